import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { PeerBook } from '../../../daemon/replication/peer-book.ts'
import { Replicator } from '../../../daemon/replication/replicator.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { FakeReplicationTransport } from '../../helpers/fake-transport.ts'

/**
 * The periodic anti-entropy tick over a fake transport (docs/sync-protocol.md): however many peers
 * are connected, one tick asks for at most `fanout` sessions, and successive ticks go round all of
 * them. The fake opens no streams, so every session fails at once and none is busy at the next tick.
 */

const logger = pino({ level: 'silent' })
const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  vi.useRealTimers()
  vi.restoreAllMocks()
  for (const close of closers.splice(0).reverse()) await close()
})

/** Sync streams asked for at each of the next `ticks` periodic ticks. */
async function sessionsPerTick(peers: number, fanout: number, ticks: number): Promise<{ perTick: number[]; opened: string[]; connected: string[] }> {
  // No jitter: the tick comes every 1000 ms exactly.
  vi.spyOn(Math, 'random').mockReturnValue(0.5)
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'aaaa', logger })
  await store.open()
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] })
  const transport = new FakeReplicationTransport()
  const replicator = new Replicator({ store, transport, peers: new PeerBook(), logger }, { gcIntervalMs: 0, antiEntropyIntervalMs: 1000, antiEntropyFanout: fanout })
  replicator.start()
  closers.push(async () => {
    await replicator.stop()
    await store.close()
  })
  // Declared connected without connect events: only the periodic tick asks for sessions.
  transport.connected = Array.from({ length: peers }, (_, i) => `12D3KooWPeer${String(i).padStart(3, '0')}`)
  const perTick: number[] = []
  for (let i = 0; i < ticks; i++) {
    const before = transport.syncOpened.length
    await vi.advanceTimersByTimeAsync(1000)
    perTick.push(transport.syncOpened.length - before)
  }
  return { perTick, opened: [...transport.syncOpened], connected: transport.connected }
}

describe('periodic anti-entropy with a fanout', () => {
  for (const peers of [1, 3, 12, 47]) {
    it(`with ${peers} connected peers, each tick asks for at most fanout (2) sessions, and the ticks go round every peer`, async () => {
      const fanout = 2
      const ticks = Math.ceil(peers / fanout) + 3
      const { perTick, opened, connected } = await sessionsPerTick(peers, fanout, ticks)
      expect(perTick).toEqual(Array.from({ length: ticks }, () => Math.min(fanout, peers)))
      // Round robin: the first `peers` sessions are each with a different peer, so none waits
      // longer than ceil(peers / fanout) ticks.
      expect(new Set(opened.slice(0, peers))).toEqual(new Set(connected))
    })
  }

  it('sessions per tick do not grow with the number of connected peers', async () => {
    const small = await sessionsPerTick(4, 3, 12)
    const large = await sessionsPerTick(48, 3, 12)
    const total = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)
    expect(total(small.perTick)).toBe(36)
    expect(total(large.perTick)).toBe(36)
  })
})
