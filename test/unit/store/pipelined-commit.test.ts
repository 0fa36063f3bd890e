import fc from 'fast-check'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import type { ChangeRecord, JsonRecord } from '../../../crdt/index.ts'
import { MemoryKvStore, type KvBatchOp, type KvWriteOptions } from '../../../daemon/storage/index.ts'
import { EntityStore, type BatchTiming } from '../../../daemon/store/entity-store.ts'
import { prng } from '../crdt/arbitraries.ts'

/**
 * The committer applies the next group while the previous group's batch is written (two-deep
 * pipeline). These tests hold batches at a gate to see the overlap, and fail them to see that a
 * group built on a failed batch is done again rather than written or lost.
 */

const logger = pino({ level: 'silent' })
const STORAGE_FAILURE = (): Error => Object.assign(new Error('disk failed'), { code: 'STORAGE_FAILURE' })

/** A memory store whose batches wait for `release` (or fail) when `hold` is set. */
class GatedKv extends MemoryKvStore {
  hold = false
  readonly waiting: { ops: readonly KvBatchOp[]; release: (fail?: Error) => void }[] = []
  batches = 0
  /** Reads of several keys, on this thread or not (a group's load is one). */
  reads = 0
  /** Of those, the ones done on this thread. */
  readsNow = 0

  override getManyNow(keys: readonly string[]): (Uint8Array | undefined)[] | undefined {
    this.reads++
    this.readsNow++
    return super.getManyNow(keys)
  }

  override async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    this.reads++
    return super.getMany(keys)
  }

  override async batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void> {
    this.batches++
    if (this.hold) {
      const { promise, resolve, reject } = Promise.withResolvers<void>()
      this.waiting.push({ ops, release: (fail) => (fail ? reject(fail) : resolve()) })
      await promise
    }
    return super.batch(ops, options)
  }
}

const stores: EntityStore[] = []
async function openStore(kv: GatedKv): Promise<EntityStore> {
  const store = new EntityStore({ kv, nodeId: 'aaaa', logger })
  await store.open()
  stores.push(store)
  return store
}
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
})

async function changesOf(store: EntityStore): Promise<ChangeRecord[]> {
  const out: ChangeRecord[] = []
  for await (const c of store.changeLog('aaaa', 0)) out.push(c)
  return out
}

/** Lets every pending promise callback and I/O of the memory store run. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5))

describe('pipelined group commit', () => {
  it('applies the next group while a batch is written, writes batches in order, answers each after its own', async () => {
    const kv = new GatedKv()
    const store = await openStore(kv)
    kv.hold = true
    const first = store.write([{ op: 'put', ns: 'p', id: 'a', value: { v: 1 } }])
    await settle()
    expect(kv.waiting).toHaveLength(1)
    const loadsBefore = kv.reads
    let secondDone = false
    const second = store.write([{ op: 'put', ns: 'p', id: 'b', value: { v: 2 } }]).then((v) => {
      secondDone = true
      return v
    })
    await settle()
    // Loaded and applied during the first batch, but not written before it, nor answered.
    expect(kv.reads).toBe(loadsBefore + 1)
    expect(kv.waiting).toHaveLength(1)
    expect(secondDone).toBe(false)
    expect(store.versionVector).toEqual({})
    kv.waiting.shift()?.release()
    expect((await first)[0]?.version).toEqual({ aaaa: 1 })
    await settle()
    expect(kv.waiting).toHaveLength(1)
    expect(secondDone).toBe(false)
    expect(store.versionVector).toEqual({ aaaa: 1 })
    kv.waiting.shift()?.release()
    expect((await second)[0]?.version).toEqual({ aaaa: 2 })
    expect((await changesOf(store)).map((c) => [c.id, c.seq])).toEqual([
      ['a', 1],
      ['b', 2],
    ])
    expect(store.entityCounts).toEqual({ p: 2 })
  })

  it('reads through the pool while a batch is being written, on this thread again once it is published', async () => {
    // LevelDB shows a batch before the store has published it (node vector, counts); a read
    // through the pool is answered after the batch, one on this thread would not be.
    const kv = new GatedKv()
    const store = await openStore(kv)
    await store.write([{ op: 'put', ns: 'p', id: 'a', value: { v: 1 } }])
    kv.hold = true
    const writing = store.write([{ op: 'put', ns: 'p', id: 'b', value: { v: 2 } }])
    await settle()
    expect(kv.waiting).toHaveLength(1)
    const before = kv.readsNow
    expect((await store.get('p', 'a')).value).toEqual({ v: 1 })
    expect(kv.readsNow).toBe(before)
    kv.waiting.shift()?.release()
    await writing
    expect((await store.get('p', 'b')).value).toEqual({ v: 2 })
    expect(kv.readsNow).toBe(before + 1)
  })

  it('a group that touches an entity of the batch being written waits for that batch before loading', async () => {
    const kv = new GatedKv()
    const store = await openStore(kv)
    kv.hold = true
    const first = store.write([{ op: 'put', ns: 'p', id: 'x', value: { a: 1 } }])
    await settle()
    const loadsBefore = kv.reads
    const second = store.write([{ op: 'patch', ns: 'p', id: 'x', value: { b: 2 } }])
    await settle()
    expect(kv.reads).toBe(loadsBefore)
    kv.waiting.shift()?.release()
    await first
    await settle()
    kv.waiting.shift()?.release()
    expect((await second)[0]).toMatchObject({ value: { a: 1, b: 2 }, version: { aaaa: 2 } })
  })

  it('when a batch fails, the group applied on top of it is done again, not lost and not written on the failed one', async () => {
    const kv = new GatedKv()
    const store = await openStore(kv)
    await store.write([{ op: 'put', ns: 'p', id: 'x', value: { v: 0 } }])
    const clientBefore = store.clientId
    kv.hold = true
    const failing = store.write([{ op: 'patch', ns: 'p', id: 'x', value: { v: 1 } }])
    await settle()
    const redone = store.write([{ op: 'put', ns: 'p', id: 'y', value: { w: 1 } }])
    await settle()
    expect(kv.waiting).toHaveLength(1)
    kv.hold = false
    kv.waiting.shift()?.release(STORAGE_FAILURE())
    await expect(failing).rejects.toMatchObject({ code: 'STORAGE_FAILURE' })
    // The second group was built on seq 2; it is redone on the durable state and takes seq 2.
    expect((await redone)[0]).toMatchObject({ id: 'y', value: { w: 1 }, version: { aaaa: 2 } })
    expect(store.clientId).not.toBe(clientBefore)
    expect((await store.get('p', 'x')).value).toEqual({ v: 0 })
    expect((await changesOf(store)).map((c) => [c.id, c.seq])).toEqual([
      ['x', 1],
      ['y', 2],
    ])
    expect(store.versionVector).toEqual({ aaaa: 2 })
    expect(store.entityCounts).toEqual({ p: 2 })
  })

  it('under random batch failures every answered write is kept, in the order taken, and nothing refused is (seeded property)', async () => {
    const KEYS = ['k0', 'k1', 'k2', 'k3']
    const opArb = fc.record({
      op: fc.constantFrom('put' as const, 'patch' as const),
      id: fc.constantFrom(...KEYS),
      value: fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: 9 }), { minKeys: 1, maxKeys: 2, noNullPrototype: true }),
    })
    const writesArb = fc.array(fc.record({ ops: fc.array(opArb, { minLength: 1, maxLength: 3 }), delayMs: fc.constantFrom(-1, 0, 1, 2) }), {
      minLength: 1,
      maxLength: 25,
    })
    const totals = { failedBatches: 0, acked: 0, refused: 0 }
    await fc.assert(
      fc.asyncProperty(writesArb, fc.integer(), async (writes, seed) => {
        const rand = prng(seed)
        const kv = new GatedKv()
        const store = await openStore(kv)
        const original = kv.batch.bind(kv)
        let failed = 0
        kv.batch = async (ops, options) => {
          // Batches finish after a random delay; one in four fails.
          await new Promise((resolve) => setTimeout(resolve, Math.floor(rand() * 3)))
          if (rand() < 0.25) {
            failed++
            throw STORAGE_FAILURE()
          }
          return original(ops, options)
        }
        let taken = 0
        const outcomes = await Promise.all(
          writes.map(async ({ ops, delayMs }) => {
            if (delayMs >= 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
            const jobs = ops.map((o) => ({ ns: 'p', ...o }))
            const order = taken++
            return store.write(jobs).then(
              () => ({ jobs, order, ok: true }),
              () => ({ jobs, order, ok: false }),
            )
          }),
        )
        kv.batch = original
        // The model: the answered writes, applied in the order they reached the store.
        const model = new Map<string, JsonRecord>()
        for (const { jobs } of outcomes.filter((o) => o.ok).sort((a, b) => a.order - b.order)) {
          for (const op of jobs) model.set(op.id, op.op === 'put' ? { ...op.value } : { ...model.get(op.id), ...op.value })
        }
        for (const id of KEYS) {
          const got = await store.get('p', id).then(
            (v) => v.value,
            () => undefined,
          )
          expect(got).toEqual(model.get(id))
        }
        expect(store.entityCounts).toEqual(model.size > 0 ? { p: model.size } : {})
        // The log holds exactly the durable changes, numbered without a gap, and replays to the
        // same state on another node.
        const log = await changesOf(store)
        expect(log.map((c) => c.seq)).toEqual(log.map((_, i) => i + 1))
        expect(store.versionVector).toEqual(log.length > 0 ? { aaaa: log.length } : {})
        const replica = await openStore(new GatedKv())
        await replica.applyRemote(log)
        for (const id of KEYS) {
          const got = await replica.get('p', id).then(
            (v) => v.value,
            () => undefined,
          )
          expect(got).toEqual(model.get(id))
        }
        totals.failedBatches += failed
        totals.acked += outcomes.filter((o) => o.ok).length
        totals.refused += outcomes.filter((o) => !o.ok).length
      }),
      { seed: 11, numRuns: 60 },
    )
    // The runs did exercise both sides.
    expect(totals.failedBatches).toBeGreaterThan(20)
    expect(totals.refused).toBeGreaterThan(20)
    expect(totals.acked).toBeGreaterThan(200)
  })
})

describe('batch timings', () => {
  it("emits durable once per batch written, with its entries and the time its write took; none for a failed batch, and a listener's throw fails nothing", async () => {
    const kv = new GatedKv()
    const store = await openStore(kv)
    const timings: BatchTiming[] = []
    const committed: string[] = []
    store.on('commit', (changes) => committed.push(...changes.map((c) => c.change.id)))
    store.on('durable', (timing) => {
      timings.push(timing)
      throw new Error('a broken listener')
    })
    kv.hold = true
    const first = store.write([{ op: 'put', ns: 'p', id: 'a', value: { v: 1 } }])
    await settle()
    const held = kv.waiting.shift()
    await new Promise((resolve) => setTimeout(resolve, 40))
    held?.release()
    expect((await first)[0]?.version).toEqual({ aaaa: 1 })
    expect(timings).toHaveLength(1)
    expect(timings[0]?.entries).toBe(held?.ops.length)
    expect(timings[0]?.seconds).toBeGreaterThanOrEqual(0.035)
    expect(committed).toEqual(['a'])

    const failing = store.write([{ op: 'put', ns: 'p', id: 'b', value: { v: 2 } }])
    await settle()
    kv.waiting.shift()?.release(STORAGE_FAILURE())
    await expect(failing).rejects.toMatchObject({ code: 'STORAGE_FAILURE' })
    expect(timings).toHaveLength(1)
  })
})
