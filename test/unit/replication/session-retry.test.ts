import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { PeerBook } from '../../../daemon/replication/peer-book.ts'
import { Replicator } from '../../../daemon/replication/replicator.ts'
import { CONNECT_SYNC_RETRIES } from '../../../daemon/replication/session-scheduler.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { FakeReplicationTransport } from '../../helpers/fake-transport.ts'

/**
 * The session a connect asks for (docs/sync-protocol.md): the side with the smaller peer id starts
 * it, so when it fails (the peer is still starting and serves no sessions yet, or the connection
 * was replaced by a newer one) that side tries again while the peer stays connected. The fake
 * transport opens no streams: every session fails at once.
 */

const logger = pino({ level: 'silent' })
/** Sorts after the fake's own peer id: this node starts the sessions with it. */
const LATER = '12D3KooWPeerOfTheFake'
/** Sorts before it: that peer starts them. */
const EARLIER = '12D3KooWAPeerBefore'

const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
  vi.useRealTimers()
})

async function start(): Promise<{ transport: FakeReplicationTransport; replicator: Replicator }> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'aaaa', logger })
  await store.open()
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] })
  const transport = new FakeReplicationTransport()
  // No periodic session within the test.
  const replicator = new Replicator({ store, transport, peers: new PeerBook(), logger }, { gcIntervalMs: 0, antiEntropyIntervalMs: 3_600_000 })
  replicator.start()
  closers.push(async () => {
    await replicator.stop()
    await store.close()
  })
  return { transport, replicator }
}

const opened = (t: FakeReplicationTransport, peer: string): number => t.syncOpened.filter((p) => p === peer).length

describe('the session asked for on connect', () => {
  it('is tried again, a second apart, while the peer stays connected, then no more', async () => {
    const { transport, replicator } = await start()
    transport.connected = [LATER]
    transport.emit('peer:connect', LATER)
    await vi.advanceTimersByTimeAsync(10)
    expect(opened(transport, LATER)).toBe(1)
    for (let i = 1; i <= CONNECT_SYNC_RETRIES; i++) {
      await vi.advanceTimersByTimeAsync(1000)
      expect(opened(transport, LATER)).toBe(1 + i)
    }
    await vi.advanceTimersByTimeAsync(10_000)
    expect(opened(transport, LATER)).toBe(1 + CONNECT_SYNC_RETRIES)
    expect(replicator.stats.sessionFailures).toBe(1 + CONNECT_SYNC_RETRIES)
  })

  it('is not tried again once the peer is gone', async () => {
    const { transport } = await start()
    transport.connected = [LATER]
    transport.emit('peer:connect', LATER)
    await vi.advanceTimersByTimeAsync(10)
    transport.connected = []
    transport.emit('peer:disconnect', LATER)
    await vi.advanceTimersByTimeAsync(10_000)
    expect(opened(transport, LATER)).toBe(1)
  })

  it('is left to the peer with the smaller id', async () => {
    const { transport } = await start()
    transport.connected = [EARLIER]
    transport.emit('peer:connect', EARLIER)
    transport.emit('peer:subscribed', EARLIER)
    await vi.advanceTimersByTimeAsync(10_000)
    expect(opened(transport, EARLIER)).toBe(0)
  })
})
