import { afterAll, describe, expect, it } from 'vitest'
import { startDaemon, stopAllDaemons, writeConfig } from '../helpers/daemon-process.ts'
import { makeTempDir } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/** Tombstone GC through a real daemon process: config, REST feed, status and metrics. */
describe('tombstone GC in a daemon (single node: it is the whole cluster)', () => {
  afterAll(stopAllDaemons)

  it('purges after the grace period: feed cursor from before gets 410, status and metrics count it, a PUT recreates', async () => {
    const dataDir = await makeTempDir('meshsync-e2e-')
    await writeConfig(dataDir, { gc: { tombstoneGraceMs: 300, intervalMs: 100, clockSkewMs: 0 } })
    const d = await startDaemon({ dataDir })
    expect((await d.sock('PUT', '/v1/ns/items/entities/gone', { v: 1 })).status).toBe(200)
    expect((await d.sock('PUT', '/v1/ns/items/entities/kept', { v: 2 })).status).toBe(200)
    const first = await d.sock<{ cursor: string }>('GET', '/v1/ns/items/changes?limit=1')
    expect((await d.sock('DELETE', '/v1/ns/items/entities/gone')).status).toBe(200)

    await waitFor(async () => (await d.sock<{ gc: { purged: number } }>('GET', '/v1/status')).json.gc.purged === 1, { timeout: 15_000 })
    const expired = await d.sock<{ error: { code: string } }>('GET', `/v1/ns/items/changes?since=${first.json.cursor}`)
    expect(expired.status).toBe(410)
    expect(expired.json.error.code).toBe('CURSOR_EXPIRED')
    const all = await d.sock<{ changes: { id: string }[] }>('GET', '/v1/ns/items/changes?since=0')
    expect(all.json.changes.map((c) => c.id)).toEqual(['kept'])
    const metrics = await d.sock<string>('GET', '/metrics')
    expect(metrics.text).toMatch(/^meshsync_tombstones_purged_total 1$/m)

    expect((await d.sock('GET', '/v1/ns/items/entities/gone')).status).toBe(404)
    // Its history went with it, and says so (docs/history.md).
    const vector = { [d.info.nodeId]: 3 }
    expect((await d.sock('GET', '/v1/ns/items/entities/gone/history')).json).toEqual({ ns: 'items', id: 'gone', items: [], truncated: { before: vector, reason: 'purged' } })
    expect((await d.sock('POST', '/v1/history/verify')).json).toMatchObject({ ok: true, records: 3, entries: 1, purged: 2 })
    expect((await d.sock('PUT', '/v1/ns/items/entities/gone', { v: 3 })).status).toBe(200)
    expect((await d.sock<{ value: unknown }>('GET', '/v1/ns/items/entities/gone')).json.value).toEqual({ v: 3 })
    const again = await d.sock<{ items: { values: unknown }[]; truncated: unknown }>('GET', '/v1/ns/items/entities/gone/history')
    expect(again.json.items.map((i) => i.values)).toEqual([{ v: 3 }])
    expect(again.json.truncated).toEqual({ before: vector, reason: 'purged' })
    await d.stop()
  })
})
