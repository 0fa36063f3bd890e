import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { PeerBook } from '../../../daemon/replication/peer-book.ts'
import { Replicator } from '../../../daemon/replication/replicator.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { FakeReplicationTransport } from '../../helpers/fake-transport.ts'

/**
 * Local commits go out on gossip paced: a commit after a quiet spell at once (on the next turn of
 * the event loop, after the writer has its answer), the commits of a burst together in one
 * message per pace interval (each peer then handles one message for many changes). A fake
 * transport records what is published.
 */

const logger = pino({ level: 'silent' })
const PACE_MS = 300

const running: { replicator: Replicator; store: EntityStore }[] = []
afterEach(async () => {
  for (const { replicator, store } of running.splice(0)) {
    await replicator.stop()
    await store.close()
  }
})

async function start(gossipPaceMs: number, gossipPaceMaxMs?: number): Promise<{ store: EntityStore; transport: FakeReplicationTransport }> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'aaaa', logger })
  await store.open()
  const transport = new FakeReplicationTransport()
  const replicator = new Replicator({ store, transport, peers: new PeerBook(), logger }, { gossipPaceMs, ...(gossipPaceMaxMs !== undefined && { gossipPaceMaxMs }), gcIntervalMs: 0 })
  replicator.start()
  running.push({ replicator, store })
  return { store, transport }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
/** One turn of the event loop (what the publish of a commit after a quiet spell waits for). */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const put = async (store: EntityStore, i: number): Promise<void> => {
  await store.write([{ op: 'put', ns: 'g', id: `e${i}`, value: { i } }])
  await turn()
}

describe('gossip publish pacing', () => {
  it('publishes a commit after a quiet spell at once, and the commits of a burst together after the interval', async () => {
    const { store, transport } = await start(PACE_MS)
    await put(store, 1)
    expect(transport.published).toEqual([[1]])
    // Four commits within the interval: held, then published as one message.
    for (let i = 2; i <= 5; i++) await put(store, i)
    expect(transport.published).toEqual([[1]])
    await sleep(PACE_MS + 100)
    expect(transport.published).toEqual([[1], [2, 3, 4, 5]])
    // Quiet for longer than the interval: the next commit goes out at once again.
    await sleep(PACE_MS + 50)
    await put(store, 6)
    expect(transport.published).toEqual([[1], [2, 3, 4, 5], [6]])
  })

  it("answers the writer before it publishes: the publish waits for the event loop's next turn", async () => {
    const { store, transport } = await start(PACE_MS)
    await store.write([{ op: 'put', ns: 'g', id: 'first', value: { i: 1 } }])
    expect(transport.published).toEqual([])
    await turn()
    expect(transport.published).toEqual([[1]])
  })

  it('under a burst, spaces its publishes out up to the most spacing', async () => {
    // Least spacing 50 ms, most 400 ms. A commit of 100 changes is far above one change per 50 ms:
    // the spacing grows to 400 ms at once, and the burst waits for it.
    const { store, transport } = await start(50, 400)
    await put(store, 1)
    expect(transport.published).toEqual([[1]])
    await store.write(Array.from({ length: 100 }, (_, i) => ({ op: 'put' as const, ns: 'g', id: `b${i}`, value: { i } })))
    await sleep(200)
    expect(transport.published).toEqual([[1]])
    const deadline = performance.now() + 3000
    while (transport.published.length < 2 && performance.now() < deadline) await sleep(5)
    expect((transport.publishedAt[1] as number) - (transport.publishedAt[0] as number)).toBeGreaterThanOrEqual(395)
    expect(transport.published).toEqual([[1], Array.from({ length: 100 }, (_, i) => i + 2)])
  })

  it('with a pace of 0, publishes every commit on its own', async () => {
    const { store, transport } = await start(0)
    for (let i = 1; i <= 4; i++) await put(store, i)
    expect(transport.published).toEqual([[1], [2], [3], [4]])
  })
})
