import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import type { ChangeRecord } from '../../../crdt/index.ts'
import { PeerBook } from '../../../daemon/replication/peer-book.ts'
import { Replicator } from '../../../daemon/replication/replicator.ts'
import { MemoryKvStore, type KvBatchOp, type KvWriteOptions } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { FakeReplicationTransport } from '../../helpers/fake-transport.ts'
import { remoteChanges } from '../../helpers/remote-changes.ts'

/**
 * Remote changes that arrive while a pass of ingestion is being committed join the next pass: one
 * group commit for all of them, rather than one commit each, one after the other.
 */

const logger = pino({ level: 'silent' })

/** A memory store whose next batch (each time it is asked) waits until released. */
class HeldBatchKv extends MemoryKvStore {
  readonly #gates: PromiseWithResolvers<void>[] = []
  #handedOut = 0
  #holdNext = false
  holdNextBatch(): void {
    this.#holdNext = true
  }
  /** Resolves once a held batch is waiting (one not handed out yet); call the result to release it. */
  async held(): Promise<() => void> {
    while (this.#gates.length <= this.#handedOut) await new Promise((r) => setTimeout(r, 1))
    const gate = this.#gates[this.#handedOut++] as PromiseWithResolvers<void>
    return () => gate.resolve()
  }
  override async batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void> {
    if (this.#holdNext) {
      this.#holdNext = false
      const gate = Promise.withResolvers<void>()
      this.#gates.push(gate)
      await gate.promise
    }
    return super.batch(ops, options)
  }
}

const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})


async function startReplicator(kv: MemoryKvStore): Promise<{ store: EntityStore; replicator: Replicator; passes: number[] }> {
  const store = new EntityStore({ kv, nodeId: 'aaaa', logger })
  await store.open()
  const passes: number[] = []
  const applyRemote = store.applyRemote.bind(store)
  store.applyRemote = async (changes) => {
    passes.push(changes.length)
    return applyRemote(changes)
  }
  const replicator = new Replicator({ store, transport: new FakeReplicationTransport(), peers: new PeerBook(), logger }, { gcIntervalMs: 0 })
  replicator.start()
  closers.push(async () => {
    await replicator.stop()
    await store.close()
  })
  return { store, replicator, passes }
}

describe('ingestion of remote changes', () => {
  it('changes handed over while a pass is committed are applied together in the next round', async () => {
    const kv = new HeldBatchKv()
    const { store, replicator, passes } = await startReplicator(kv)
    const [c1, c2, c3, c4, c5] = (await remoteChanges(5)) as [ChangeRecord, ChangeRecord, ChangeRecord, ChangeRecord, ChangeRecord]

    kv.holdNextBatch()
    const first = replicator.ingest([c1])
    const release = await kv.held()
    // While the first pass's batch is held: four more arrive, one by one.
    const later = [replicator.ingest([c2]), replicator.ingest([c3]), replicator.ingest([c5]), replicator.ingest([c4])]
    release()
    await first
    await Promise.all(later)
    expect(passes).toEqual([1, 4])
    expect(store.versionVector).toEqual({ bbbb: 5 })
    for (let i = 1; i <= 5; i++) expect((await store.get('r', `e${i}`)).value).toEqual({ i })
    expect(replicator.pendingCount).toBe(0)
  })

  it("an ingest's promise resolves once its changes are applied, or waiting for predecessors", async () => {
    const { store, replicator } = await startReplicator(new MemoryKvStore())
    const [c1, c2, c3] = (await remoteChanges(3)) as [ChangeRecord, ChangeRecord, ChangeRecord]
    await replicator.ingest([c3])
    expect(store.versionVector).toEqual({})
    expect(replicator.pendingCount).toBe(1)
    await replicator.ingest([c1])
    expect(store.versionVector).toEqual({ bbbb: 1 })
    await replicator.ingest([c2])
    expect(store.versionVector).toEqual({ bbbb: 3 })
    expect(replicator.pendingCount).toBe(0)
  })

  it('an ingest resolves when the round that took its changes ends, while later rounds go on', async () => {
    const kv = new HeldBatchKv()
    const { store, replicator, passes } = await startReplicator(kv)
    const [c1, c2, c3] = (await remoteChanges(3)) as [ChangeRecord, ChangeRecord, ChangeRecord]
    kv.holdNextBatch()
    const first = replicator.ingest([c1])
    const releaseFirst = await kv.held()
    const second = replicator.ingest([c2])
    kv.holdNextBatch()
    releaseFirst()
    await first
    // The second pass is held; a third change arrives meanwhile, and its pass will be held too.
    const releaseSecond = await kv.held()
    let thirdDone = false
    const third = replicator.ingest([c3]).then(() => (thirdDone = true))
    kv.holdNextBatch()
    releaseSecond()
    await second
    expect(store.versionVector).toEqual({ bbbb: 2 })
    const releaseThird = await kv.held()
    expect(thirdDone).toBe(false)
    releaseThird()
    await third
    expect(store.versionVector).toEqual({ bbbb: 3 })
    expect(passes).toEqual([1, 1, 1])
  })
})
