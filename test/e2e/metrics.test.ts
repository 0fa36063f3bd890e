import { afterEach, describe, expect, it } from 'vitest'
import { joinArgs, put, waitConverged } from '../helpers/cluster.ts'
import { startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon-process.ts'
import { makeTempDir, removeTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

afterEach(async () => {
  await stopAllDaemons()
  await removeTempDirs()
})

/**
 * Parses Prometheus text exposition strictly enough to catch a malformed line; name{labels} ->
 * value. NaN and Inf in any case, as Prometheus reads them (prom-client writes `Nan` for the mean
 * of an event-loop lag histogram that has no sample yet: a scrape within 100 ms of the last).
 */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.eE+-]+|nan|[+-]?inf)$/i.exec(line)
    if (!m) throw new Error(`not Prometheus text: ${line}`)
    out.set(m[1] as string, Number(m[2]))
  }
  return out
}

async function metricsOf(d: DaemonHandle, via: 'tcp' | 'sock'): Promise<Map<string, number>> {
  const res = via === 'tcp' ? await d.tcp('GET', '/metrics') : await d.sock('GET', '/metrics')
  expect(res.status).toBe(200)
  expect(res.headers['content-type']).toMatch(/text\/plain/)
  return parseMetrics(res.text)
}

describe('GET /metrics', () => {
  it('parses as Prometheus text and its counters move with writes and syncs', { timeout: 90_000 }, async () => {
    const a = await startDaemon({ dataDir: await makeTempDir('msync-m-') })
    const b = await startDaemon({ dataDir: await makeTempDir('msync-m-'), args: joinArgs(a) })
    const before = await metricsOf(a, 'tcp')
    expect(before.get('meshsync_changes_committed_total{source="local"}') ?? 0).toBe(0)
    expect([...before.keys()].some((k) => k.startsWith('libp2p_'))).toBe(true)

    const expected = new Map<string, { i: number }>()
    for (let i = 0; i < 5; i++) {
      await put(a, 'm', `k${i}`, { i }, 'sock')
      expected.set(`m/k${i}`, { i })
    }
    await waitConverged([a, b], expected)
    const afterA = await metricsOf(a, 'sock')
    const afterB = await metricsOf(b, 'tcp')
    expect(afterA.get('meshsync_changes_committed_total{source="local"}')).toBe(5)
    expect(afterB.get('meshsync_changes_committed_total{source="remote"}')).toBe(5)
    expect(afterA.get('meshsync_entities{ns="m"}')).toBe(5)
    // Five writes, one after another: at least five group commits timed, each in one bucket.
    const timed = afterA.get('meshsync_commit_duration_seconds_count') ?? 0
    expect(timed).toBeGreaterThanOrEqual(5)
    expect(afterA.get('meshsync_commit_duration_seconds_bucket{le="+Inf"}')).toBe(timed)
    expect(afterA.get('meshsync_commit_duration_seconds_sum') ?? 0).toBeGreaterThan(0)
    expect(afterB.get('meshsync_entities{ns="m"}')).toBe(5)
    expect(afterB.get(`meshsync_peer_connected{peer="${a.info.peerId}"}`)).toBe(1)
    expect(afterA.get('meshsync_sync_sessions_total') ?? 0).toBeGreaterThan(0)
    // Five writes are no sustained load: the gossip spacing is the least one, p2p.gossipPaceMs.
    expect(afterA.get('meshsync_gossip_spacing_seconds')).toBe(0.005)
    expect(afterB.get('meshsync_leveldb_bytes') ?? 0).toBeGreaterThan(0)
    // Once B listens on the topic, a write travels by gossip, counted per peer on both sides.
    await waitFor(async () => {
      await put(a, 'm', 'gossiped', { at: Date.now() }, 'sock')
      const [ma, mb] = [await metricsOf(a, 'sock'), await metricsOf(b, 'sock')]
      return (ma.get(`meshsync_peer_gossip_bytes_out_total{peer="${b.info.peerId}"}`) ?? 0) > 0 && (mb.get(`meshsync_peer_gossip_bytes_in_total{peer="${a.info.peerId}"}`) ?? 0) > 0
    }, { timeout: 20_000, interval: 300 })
    // Without the token, TCP refuses.
    const denied = await a.tcp('GET', '/metrics', undefined, { authorization: undefined })
    expect(denied.status).toBe(401)
  })
})
