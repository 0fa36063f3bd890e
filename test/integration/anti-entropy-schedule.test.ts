import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { newClusterKey, startMeshNode, type MeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const { nodes } = stoppedAfterEach()
/** No link probe within a test, so no state digest: every periodic session runs (digests skipping them are tested in link-monitor.test.ts). */
const NO_DIGESTS = 600_000

/**
 * A periodic tick syncs with up to `fanout` connected peers (docs/sync-protocol.md).
 * Both sides of a pair run the periodic anti-entropy timer; a session is symmetric, so a side
 * skips its periodic session when one with the peer (either side's) succeeded less than half a
 * period before. The pair then runs about one periodic session per period rather than two, and
 * still repairs on its own.
 */
describe('periodic anti-entropy', () => {
  it('runs about one session per period for the pair, skips the redundant ones, and still carries writes that gossip does not', { timeout: 30_000 }, async () => {
    const interval = 300
    const key = newClusterKey()
    const [a, b] = (await Promise.all([0, 1].map(() => startMeshNode({ clusterKey: key, gossip: false, linkProbeMs: NO_DIGESTS, replicator: { antiEntropyIntervalMs: interval } })))) as [MeshNode, MeshNode]
    nodes.push(a, b)
    await a.transport.dial(b.addr())
    await waitFor(() => a.replicator.stats.sessions > 0 && b.replicator.stats.sessions > 0)

    const sessions0 = a.replicator.stats.sessions
    const started = performance.now()
    await sleep(4_000)
    const elapsed = performance.now() - started
    // Each session is counted once on each side: this is the pair's count.
    const sessions = a.replicator.stats.sessions - sessions0
    const periods = elapsed / interval
    // Before, each side started one every period: about 2 per period (over 26 here).
    expect(sessions).toBeLessThanOrEqual(Math.ceil(periods * 1.5))
    // At least one per longest jittered period (fewer only when the event loop is starved).
    expect(sessions).toBeGreaterThanOrEqual(Math.floor(periods / 1.25) - 3)
    expect(a.replicator.stats.periodicSkipped + b.replicator.stats.periodicSkipped).toBeGreaterThan(0)
    expect(a.replicator.stats.sessionFailures + b.replicator.stats.sessionFailures).toBe(0)

    // Gossip is off: only the periodic sessions can carry these.
    await a.store.write([{ op: 'put', ns: 'n', id: 'from-a', value: { v: 1 } }])
    await b.store.write([{ op: 'put', ns: 'n', id: 'from-b', value: { v: 2 } }])
    await waitFor(async () => Boolean(await a.store.get('n', 'from-b')) && Boolean(await b.store.get('n', 'from-a')), { timeout: 10_000, message: 'both writes on both nodes' })
  })

  it('with more peers than the fanout, each node starts at most fanout sessions per tick, and writes still reach every node', { timeout: 40_000 }, async () => {
    const interval = 300
    const key = newClusterKey()
    const group = await Promise.all([0, 1, 2, 3, 4].map(() => startMeshNode({ clusterKey: key, gossip: false, linkProbeMs: NO_DIGESTS, replicator: { antiEntropyIntervalMs: interval, antiEntropyFanout: 1 } })))
    nodes.push(...group)
    for (let i = 0; i < group.length; i++) for (let j = i + 1; j < group.length; j++) await group[i]!.transport.dial(group[j]!.addr())
    await waitFor(() => group.every((n) => n.transport.connectedPeers().length === group.length - 1))
    await Promise.all(group.map((n) => n.replicator.idle()))

    const pairSessions = (): number => group.reduce((sum, n) => sum + n.replicator.stats.sessions, 0) / 2
    const sessions0 = pairSessions()
    const started = performance.now()
    await sleep(3_000)
    const elapsed = performance.now() - started
    const sessions = pairSessions() - sessions0
    // Each node ticks at most once per 0.75 of a period and starts one session per tick (fanout
    // 1): at most 5 x 14.3 here. Syncing every pair each period, as before, made about 115
    // (10 pairs x 10 periods x 1.15).
    expect(sessions).toBeLessThanOrEqual(group.length * (elapsed / (0.75 * interval) + 1))
    expect(sessions).toBeGreaterThan(0)

    // Gossip is off: periodic sessions (and the news they pass on) carry every write everywhere.
    for (const [i, n] of group.entries()) await n.store.write([{ op: 'put', ns: 'n', id: `from-${i}`, value: { i } }])
    await waitFor(
      async () => {
        for (const n of group) for (let i = 0; i < group.length; i++) if (!(await n.store.get('n', `from-${i}`).catch(() => undefined))) return false
        return true
      },
      { timeout: 20_000, message: 'every write on every node' },
    )
    expect(group.reduce((sum, n) => sum + n.replicator.stats.sessionFailures, 0)).toBe(0)
  })
})
