import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { createEntityDoc, readText } from '../../../crdt/index.ts'
import { MemoryKvStore, type KvBatchOp, type KvWriteOptions } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { entityMetaKey, entityStateKey } from '../../../daemon/store/keys.ts'
import { waitFor } from '../../helpers/wait-for.ts'

/**
 * A write loads the entities it touches. The state of an entity whose document is in the cache is
 * not read (the document is its state); a document evicted while the reads run is read then.
 */

const logger = pino({ level: 'silent' })

/** A memory store that records the keys of every read, and can hold the next getMany. */
class ReadTrackingKv extends MemoryKvStore {
  readonly reads: string[][] = []
  /** Reads handed to getMany (a worker thread, for LevelDB) rather than done with getManyNow. */
  workerReads = 0
  #held: PromiseWithResolvers<void> | undefined
  #holdNext = false
  #batchGate: PromiseWithResolvers<void> | undefined
  #holdBatch = false

  holdNextGetMany(): void {
    this.#holdNext = true
  }

  /** Resolves once a held getMany is waiting; `release` lets it go on. */
  async held(): Promise<{ release: () => void }> {
    while (this.#held === undefined) await new Promise((r) => setTimeout(r, 1))
    const held = this.#held
    return { release: () => held.resolve() }
  }

  /** A read to be held cannot be done now: the store falls back to getMany, which holds it. */
  override getManyNow(keys: readonly string[]): (Uint8Array | undefined)[] | undefined {
    if (this.#holdNext) return undefined
    const values = super.getManyNow(keys)
    if (values !== undefined) this.reads.push([...keys])
    return values
  }

  /** Holds the next batch until the function `batchHeld` resolves with is called. */
  holdNextBatch(): void {
    this.#holdBatch = true
  }

  async batchHeld(): Promise<() => void> {
    while (this.#batchGate === undefined) await new Promise((r) => setTimeout(r, 1))
    const gate = this.#batchGate
    return () => gate.resolve()
  }

  override async batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void> {
    if (this.#holdBatch) {
      this.#holdBatch = false
      this.#batchGate = Promise.withResolvers<void>()
      await this.#batchGate.promise
    }
    return super.batch(ops, options)
  }

  override async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    this.workerReads++
    this.reads.push([...keys])
    const result = await super.getMany(keys)
    if (this.#holdNext) {
      this.#holdNext = false
      this.#held = Promise.withResolvers<void>()
      await this.#held.promise
    }
    return result
  }
}

/** Puts of `n` new entities e<from>..e<from + n - 1>, each `{ i }`. */
function puts(n: number, from: number): { op: 'put'; ns: string; id: string; value: { i: number } }[] {
  return Array.from({ length: n }, (_, i) => ({ op: 'put' as const, ns: 'n', id: `e${from + i}`, value: { i } }))
}

/** Resolves once some read included the meta key of entity `id` of namespace n. */
async function waitForReadOf(kv: ReadTrackingKv, id: string): Promise<void> {
  const key = entityMetaKey('n', id)
  await waitFor(() => kv.reads.some((keys) => keys.includes(key)), { timeout: 5_000, interval: 1, message: `a read of ${id}` })
}

const stores: EntityStore[] = []
async function openStore(kv: ReadTrackingKv, docCacheSize = 1000): Promise<EntityStore> {
  const store = new EntityStore({ kv, nodeId: 'aaaa', logger }, { docCacheSize })
  await store.open()
  stores.push(store)
  return store
}
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
})

describe('loading entities for a write', () => {
  it("does not read a cached document's state, and stores the document's state after the write", async () => {
    const kv = new ReadTrackingKv()
    const store = await openStore(kv)
    await store.write([{ op: 'text', ns: 'n', id: 'doc', name: 'body', splices: [[0, 0, 'hello']] }])
    kv.reads.length = 0
    await store.write([{ op: 'text', ns: 'n', id: 'doc', name: 'body', splices: [[5, 0, ' world']] }])
    expect(kv.reads.flat()).not.toContain(entityStateKey('n', 'doc'))
    expect((await store.getText('n', 'doc', 'body')).text).toBe('hello world')
    // What is stored is the whole document, as a fresh reader of the state sees it.
    const state = (await kv.get(entityStateKey('n', 'doc'))) as Uint8Array
    expect(readText(createEntityDoc(state), 'body')).toBe('hello world')
  })

  it('reads the entities of a group of up to 32 on this thread, and those of a larger one with getMany', async () => {
    const kv = new ReadTrackingKv()
    const store = await openStore(kv)
    kv.workerReads = 0 // opening the store read its node metadata
    await store.write(puts(1, 0))
    await store.write(puts(32, 1)) // 64 keys: meta and state of each
    expect(kv.workerReads).toBe(0)
    expect((await store.get('n', 'e7')).value).toEqual({ i: 6 })
    expect(kv.workerReads).toBe(0)
    await store.write(puts(33, 100))
    expect(kv.workerReads).toBe(1)
    expect(kv.reads.at(-1)).toHaveLength(66)
    expect(store.entityCounts).toEqual({ n: 66 })
  })

  it('reads the entities of the next group on this thread while a batch is being written (none of them is in it)', async () => {
    const kv = new ReadTrackingKv()
    const store = await openStore(kv)
    kv.workerReads = 0
    kv.holdNextBatch()
    const first = store.write(puts(4, 0))
    const release = await kv.batchHeld()
    const second = store.write(puts(4, 10))
    // The second group is loaded and applied on top of the first while the first is written.
    await waitForReadOf(kv, 'e10')
    expect(kv.workerReads).toBe(0)
    release()
    await Promise.all([first, second])
    expect(store.entityCounts).toEqual({ n: 8 })
    // A reader outside the committer still waits for the batch in flight to be done.
    expect((await store.get('n', 'e12')).value).toEqual({ i: 2 })
  })

  it('reads the state of an entity not cached', async () => {
    const kv = new ReadTrackingKv()
    const store = await openStore(kv, 1)
    await store.write([{ op: 'text', ns: 'n', id: 'a', name: 'body', splices: [[0, 0, 'a1']] }])
    await store.write([{ op: 'text', ns: 'n', id: 'b', name: 'body', splices: [[0, 0, 'b1']] }])
    kv.reads.length = 0
    await store.write([{ op: 'text', ns: 'n', id: 'a', name: 'body', splices: [[2, 0, '+']] }])
    expect(kv.reads.flat()).toContain(entityStateKey('n', 'a'))
    expect((await store.getText('n', 'a', 'body')).text).toBe('a1+')
  })

  it('reads the state of a document evicted from the cache while the reads ran', async () => {
    const kv = new ReadTrackingKv()
    const store = await openStore(kv, 1)
    await store.write([{ op: 'text', ns: 'n', id: 'b', name: 'body', splices: [[0, 0, 'other']] }])
    await store.write([{ op: 'text', ns: 'n', id: 'a', name: 'body', splices: [[0, 0, 'hello']] }])
    // 'a' is cached (cache of one), so the write plans to read its meta only; hold that read.
    kv.holdNextGetMany()
    const writing = store.write([{ op: 'text', ns: 'n', id: 'a', name: 'body', splices: [[5, 0, ' world']] }])
    const gate = await kv.held()
    expect(gate).toBeDefined()
    expect(kv.reads.at(-1)).not.toContain(entityStateKey('n', 'a'))
    // Meanwhile a read of 'b' caches its document and evicts 'a'.
    expect((await store.getText('n', 'b', 'body')).text).toBe('other')
    gate.release()
    await writing
    expect(kv.reads.some((keys) => keys.length === 1 && keys[0] === entityStateKey('n', 'a'))).toBe(true)
    expect((await store.getText('n', 'a', 'body')).text).toBe('hello world')
  })
})

describe('a text read that builds a document from storage', () => {
  const splice = (id: string, pos: number, text: string) => ({ op: 'text' as const, ns: 'n', id, name: 'body', splices: [[pos, 0, text]] as [number, number, string][] })

  it('caches it when only other entities were written meanwhile: the next write of it reads no state', async () => {
    const kv = new ReadTrackingKv()
    await (await openStore(kv)).write([splice('a', 0, 'a1'), splice('b', 0, 'b1')])
    const store = await openStore(kv) // a second store on the same data: nothing cached
    kv.holdNextGetMany()
    const reading = store.getText('n', 'a', 'body')
    const gate = await kv.held()
    await store.write([splice('b', 2, '+')])
    gate.release()
    expect((await reading).text).toBe('a1')
    kv.reads.length = 0
    await store.write([splice('a', 2, '+')])
    expect(kv.reads.flat()).not.toContain(entityStateKey('n', 'a'))
    expect((await store.getText('n', 'a', 'body')).text).toBe('a1+')
  })

  it('does not cache it when the entity was committed meanwhile (its newer document since evicted): the next write builds on the committed state', async () => {
    const kv = new ReadTrackingKv()
    await (await openStore(kv)).write([splice('a', 0, 'a1'), splice('b', 0, 'b1')])
    const store = await openStore(kv, 1)
    kv.holdNextGetMany()
    const reading = store.getText('n', 'a', 'body')
    const gate = await kv.held()
    await store.write([splice('a', 2, '+')]) // commits 'a1+' and caches its document...
    await store.write([splice('b', 2, '+')]) // ...which this evicts (a cache of one)
    gate.release()
    expect((await reading).text).toBe('a1') // as of the read's start
    await store.write([splice('a', 0, '!')])
    expect((await store.getText('n', 'a', 'body')).text).toBe('!a1+')
  })
})
