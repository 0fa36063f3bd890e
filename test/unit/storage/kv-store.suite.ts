/**
 * The one test suite every {@link KvStore} implementation must pass (as automerge-repo tests its
 * storage adapters). `create` returns a fresh, not yet opened store; `reopen`, when the store is
 * durable, returns a new, not yet opened instance on the same data; `cleanup` removes what
 * `create` made. Errors are asserted by `code`, never by message.
 */
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { StorageError } from '../../../daemon/storage/index.ts'
import type { KvBatchOp, KvRange, KvReader, KvStore } from '../../../daemon/storage/index.ts'

/** What the suite needs of one implementation. */
export interface KvStoreFixture {
  readonly store: KvStore
  readonly reopen?: () => Promise<KvStore>
  readonly cleanup: () => Promise<void>
}

const enc = new TextEncoder()
const bytes = (s: string): Uint8Array => enc.encode(s)
const put = (key: string, value: string | Uint8Array): KvBatchOp => ({ type: 'put', key, value: typeof value === 'string' ? bytes(value) : value })
const del = (key: string): KvBatchOp => ({ type: 'del', key })
const SYNC = { sync: true } as const
const NOSYNC = { sync: false } as const

/** Plain arrays, so that Buffer and Uint8Array results compare equal. */
const plain = (v: Uint8Array | undefined): number[] | undefined => (v === undefined ? undefined : Array.from(v))

async function collect(reader: KvReader, range?: KvRange): Promise<[string, number[]][]> {
  const out: [string, number[]][] = []
  for await (const [key, value] of reader.iterate(range)) out.push([key, Array.from(value)])
  return out
}

async function keysOf(reader: KvReader, range?: KvRange): Promise<string[]> {
  return (await collect(reader, range)).map(([key]) => key)
}

/** Resolves with the StorageError code `promise` rejects with; fails if it resolves or rejects otherwise. */
async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError)
    return (err as StorageError).code
  }
  throw new Error('expected a rejection')
}

function throwCode(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError)
    return (err as StorageError).code
  }
  throw new Error('expected a throw')
}

/** Fails instead of hanging when `promise` does not settle within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** The definition of key order: UTF-8 bytes. */
const utf8Order = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))

/** The reference model: a Map and the range rules of abstract-level, spelled out naively. */
function modelRange(model: ReadonlyMap<string, Uint8Array>, range: KvRange): [string, number[]][] {
  const inRange = (k: string): boolean => {
    if (range.gte !== undefined) {
      if (utf8Order(k, range.gte) < 0) return false
    } else if (range.gt !== undefined && utf8Order(k, range.gt) <= 0) return false
    if (range.lte !== undefined) {
      if (utf8Order(k, range.lte) > 0) return false
    } else if (range.lt !== undefined && utf8Order(k, range.lt) >= 0) return false
    return true
  }
  const keys = [...model.keys()].filter(inRange).sort(utf8Order)
  if (range.reverse === true) keys.reverse()
  const limit = range.limit !== undefined && range.limit >= 0 ? range.limit : keys.length
  return keys.slice(0, limit).map((k) => [k, Array.from(model.get(k) as Uint8Array)])
}

/**
 * Characters chosen for their UTF-8 and UTF-16 orders: NUL (our key separator), ASCII, the edges
 * of the 1-, 2- and 3-byte ranges, U+E000..U+FFFF (after surrogates in UTF-16, before astral
 * characters in UTF-8) and astral characters (surrogate pairs in UTF-16, 4 bytes in UTF-8).
 */
const ALPHABET = ['\u0000', '\u0001', '/', 'a', 'b', 'z', '~', '\u007f', '\u0080', 'é', '\u07ff', '\u0800', '中', '\ud7ff', '\ue000', '\uffee', '\uffff', '\u{10000}', '😀', '\u{10ffff}']
const keyArb = fc.array(fc.constantFrom(...ALPHABET), { minLength: 1, maxLength: 4 }).map((cs) => cs.join(''))
const boundArb = fc.array(fc.constantFrom(...ALPHABET), { minLength: 0, maxLength: 3 }).map((cs) => cs.join(''))
const valueArb = fc.uint8Array({ minLength: 0, maxLength: 6 })
const opArb: fc.Arbitrary<KvBatchOp> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ type: fc.constant('put' as const), key: keyArb, value: valueArb }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('del' as const), key: keyArb }) },
)
const rangeArb: fc.Arbitrary<KvRange> = fc.record(
  { gt: boundArb, gte: boundArb, lt: boundArb, lte: boundArb, reverse: fc.boolean(), limit: fc.integer({ min: -1, max: 8 }) },
  { requiredKeys: [] },
)

export function kvStoreSuite(name: string, create: () => Promise<KvStoreFixture>, options: { readonly durable: boolean }): void {
  describe(name, () => {
    let fixture: KvStoreFixture
    let store: KvStore

    beforeEach(async () => {
      fixture = await create()
      store = fixture.store
      await store.open()
    })

    afterEach(async () => {
      await store.close()
      await fixture.store.close()
      await fixture.cleanup()
    })

    describe('point reads and writes', () => {
      it('returns undefined for a missing key', async () => {
        expect(await store.get('missing')).toBeUndefined()
        expect(await store.getMany(['missing', 'also-missing'])).toEqual([undefined, undefined])
      })

      it('puts, overwrites and deletes through batches', async () => {
        await store.batch([put('a', 'one')], SYNC)
        expect(plain(await store.get('a'))).toEqual(Array.from(bytes('one')))
        await store.batch([put('a', 'two')], NOSYNC)
        expect(plain(await store.get('a'))).toEqual(Array.from(bytes('two')))
        await store.batch([del('a')], SYNC)
        expect(await store.get('a')).toBeUndefined()
        await store.batch([del('never-there')], SYNC)
        expect(await store.get('never-there')).toBeUndefined()
      })

      it('stores empty values and empty batches', async () => {
        await store.batch([put('empty', new Uint8Array(0))], SYNC)
        const value = await store.get('empty')
        expect(value).toBeInstanceOf(Uint8Array)
        expect(value?.byteLength).toBe(0)
        await store.batch([], SYNC)
        expect(await keysOf(store)).toEqual(['empty'])
      })

      it('returns getMany results in the order of the keys asked, duplicates and misses included', async () => {
        await store.batch([put('b', 'B'), put('a', 'A'), put('c', 'C')], SYNC)
        const values = await store.getMany(['c', 'missing', 'a', 'c', 'b'])
        expect(values.map(plain)).toEqual([bytes('C'), undefined, bytes('A'), bytes('C'), bytes('B')].map(plain))
        expect(await store.getMany([])).toEqual([])
      })

      it('reads the same values with getManyNow, on this thread, as copies', async () => {
        await store.batch([put('b', 'B'), put('a', 'A')], SYNC)
        const values = store.getManyNow(['b', 'missing', 'a', 'b']) as (Uint8Array | undefined)[]
        expect(values.map(plain)).toEqual([bytes('B'), undefined, bytes('A'), bytes('B')].map(plain))
        ;(values[0] as Uint8Array).fill(0)
        expect(plain(await store.get('b'))).toEqual(Array.from(bytes('B')))
        await store.batch([put('a', 'A2'), del('b')], SYNC)
        expect((store.getManyNow(['a', 'b']) as (Uint8Array | undefined)[]).map(plain)).toEqual([bytes('A2'), undefined].map(plain))
      })

      it('applies the ops of one batch in order', async () => {
        await store.batch([put('k', 'first'), del('k'), put('j', 'x'), put('j', 'y'), put('m', 'z'), del('m')], SYNC)
        expect(await store.get('k')).toBeUndefined()
        expect(plain(await store.get('j'))).toEqual(Array.from(bytes('y')))
        expect(await store.get('m')).toBeUndefined()
        await store.batch([del('j'), put('j', 'again')], SYNC)
        expect(plain(await store.get('j'))).toEqual(Array.from(bytes('again')))
      })

      it('hands out copies: neither the bytes given nor the bytes returned alias stored data', async () => {
        const input = Uint8Array.of(1, 2, 3)
        await store.batch([put('v', input)], SYNC)
        input[0] = 99
        expect(plain(await store.get('v'))).toEqual([1, 2, 3])

        const out = (await store.get('v')) as Uint8Array
        out[1] = 99
        const [many] = await store.getMany(['v'])
        ;(many as Uint8Array)[2] = 99
        for await (const [, value] of store.iterate()) value.fill(99)
        expect(plain(await store.get('v'))).toEqual([1, 2, 3])

        const snapshot = store.snapshot()
        try {
          const fromSnapshot = (await snapshot.get('v')) as Uint8Array
          fromSnapshot.fill(7)
          expect(plain(await snapshot.get('v'))).toEqual([1, 2, 3])
        } finally {
          await snapshot.close()
        }
        expect(plain(await store.get('v'))).toEqual([1, 2, 3])
      })
    })

    describe('atomic batches', () => {
      it('makes all ops of a batch visible together to concurrent readers', async () => {
        const keys = Array.from({ length: 40 }, (_, i) => `atomic/${String(i).padStart(2, '0')}`)
        await store.batch(keys.map((k) => put(k, Uint8Array.of(0))), SYNC)
        for (let round = 1; round <= 20; round++) {
          const write = store.batch(keys.map((k) => put(k, Uint8Array.of(round))), NOSYNC)
          const reads = [store.getMany(keys), store.getMany(keys), collect(store, { gte: 'atomic/', lt: 'atomic0' })]
          await write
          const [a, b, listed] = await Promise.all(reads)
          for (const seen of [a, b]) {
            const rounds = new Set((seen as (Uint8Array | undefined)[]).map((v) => v?.[0]))
            expect(rounds.size).toBe(1)
          }
          expect(new Set((listed as [string, number[]][]).map(([, v]) => v[0])).size).toBe(1)
          expect((await store.getMany(keys)).every((v) => v?.[0] === round)).toBe(true)
        }
      })

      it('applies nothing of a batch that has a bad op', async () => {
        await store.batch([put('keep', 'old')], SYNC)
        const bad = { type: 'put', key: 'bad', value: null } as unknown as KvBatchOp
        expect(await rejectionCode(store.batch([put('keep', 'new'), put('other', 'x'), bad], SYNC))).toBe('STORAGE_FAILURE')
        expect(plain(await store.get('keep'))).toEqual(Array.from(bytes('old')))
        expect(await store.get('other')).toBeUndefined()
        expect(await store.get('bad')).toBeUndefined()
      })
    })

    describe('ranges and key order', () => {
      it('orders keys by UTF-8 bytes: NUL first, astral characters after U+FFFF', async () => {
        const keys = ['b', 'a\u0000b', 'a', 'a\u0001', '\uffff', '😀', '\ue000', 'é', 'z', '\u{10ffff}', 'ns\u0000id', 'ns\u0000', 'ns']
        await store.batch(keys.map((k) => put(k, k)), SYNC)
        const expected = [...keys].sort(utf8Order)
        expect(expected.indexOf('\uffff')).toBeLessThan(expected.indexOf('😀')) // JS `<` says otherwise
        expect(await keysOf(store)).toEqual(expected)
        expect(await keysOf(store, { reverse: true })).toEqual([...expected].reverse())
        expect(await keysOf(store, { gt: '\uffff' })).toEqual(['😀', '\u{10ffff}'])
        expect(await keysOf(store, { gte: 'ns\u0000', lt: 'ns\u0001' })).toEqual(['ns\u0000', 'ns\u0000id'])
      })

      it('stores a lone surrogate as U+FFFD, as UTF-8 encoding does', async () => {
        await store.batch([put('x\ud800y', 'lone')], SYNC)
        expect(plain(await store.get('x\ufffdy'))).toEqual(Array.from(bytes('lone')))
        expect(await keysOf(store)).toEqual(['x\ufffdy'])
      })

      it('follows the range rules: gte beats gt, lte beats lt, limit 0, -1 and absent bounds', async () => {
        await store.batch(['a', 'b', 'c', 'd', 'undefined', 'undefinee'].map((k) => put(k, k)), SYNC)
        expect(await keysOf(store, { gt: 'a', gte: 'a', lt: 'd', lte: 'd' })).toEqual(['a', 'b', 'c', 'd'])
        expect(await keysOf(store, { gt: 'a', lt: 'd' })).toEqual(['b', 'c'])
        expect(await keysOf(store, { gte: 'b', limit: 2 })).toEqual(['b', 'c'])
        expect(await keysOf(store, { lte: 'c', reverse: true, limit: 2 })).toEqual(['c', 'b'])
        expect(await keysOf(store, { limit: 0 })).toEqual([])
        expect(await keysOf(store, { limit: -1 })).toHaveLength(6)
        expect(await keysOf(store, { gt: 'd', lt: 'b' })).toEqual([])
        // A present-but-undefined bound means no bound (abstract-level alone would read 'undefined').
        expect(await keysOf(store, { gt: undefined, lt: undefined, limit: undefined })).toHaveLength(6)
      })

      it('iterates thousands of entries forwards and backwards', async () => {
        const keys = Array.from({ length: 3000 }, (_, i) => `k/${String(i).padStart(5, '0')}`)
        for (let i = 0; i < keys.length; i += 500) await store.batch(keys.slice(i, i + 500).map((k) => put(k, k)), NOSYNC)
        expect(await keysOf(store)).toEqual(keys)
        expect(await keysOf(store, { reverse: true })).toEqual([...keys].reverse())
        expect(await keysOf(store, { gt: 'k/00100', limit: 1500 })).toEqual(keys.slice(101, 1601))
      })

      it('matches a model under random batches and range queries (fast-check, fixed seed)', async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 0, maxLength: 8 }), { maxLength: 6 }), fc.array(rangeArb, { minLength: 1, maxLength: 6 }), fc.array(keyArb, { maxLength: 6 }), async (batches, ranges, probes) => {
            // Start from empty: delete whatever the previous run left.
            const leftovers = await keysOf(store)
            if (leftovers.length > 0) await store.batch(leftovers.map(del), NOSYNC)
            const model = new Map<string, Uint8Array>()
            for (const ops of batches) {
              await store.batch(ops, NOSYNC)
              for (const op of ops) {
                if (op.type === 'put') model.set(op.key, op.value)
                else model.delete(op.key)
              }
            }
            for (const range of ranges) expect(await collect(store, range)).toEqual(modelRange(model, range))
            expect((await store.getMany(probes)).map(plain)).toEqual(probes.map((k) => plain(model.get(k))))
            expect((store.getManyNow(probes) ?? []).map(plain)).toEqual(probes.map((k) => plain(model.get(k))))
          }),
          { seed: 20240601, numRuns: 150 },
        )
      })
    })

    describe('snapshots', () => {
      it('does not see writes made after it was taken, deletes included', async () => {
        await store.batch([put('a', '1'), put('b', '1'), put('c', '1')], SYNC)
        const first = store.snapshot()
        await store.batch([put('a', '2'), del('b'), put('d', '2')], SYNC)
        const second = store.snapshot()
        await store.batch([del('a'), del('c'), put('e', '3')], SYNC)
        try {
          expect(plain(await first.get('a'))).toEqual(Array.from(bytes('1')))
          expect(plain(await first.get('b'))).toEqual(Array.from(bytes('1')))
          expect(await first.get('d')).toBeUndefined()
          expect((await first.getMany(['d', 'b', 'a'])).map(plain)).toEqual([undefined, bytes('1'), bytes('1')].map(plain))
          expect(await keysOf(first)).toEqual(['a', 'b', 'c'])
          expect(await keysOf(first, { gt: 'a', reverse: true })).toEqual(['c', 'b'])

          expect(await collect(second)).toEqual([
            ['a', Array.from(bytes('2'))],
            ['c', Array.from(bytes('1'))],
            ['d', Array.from(bytes('2'))],
          ])
          expect(await keysOf(store)).toEqual(['d', 'e'])
        } finally {
          await first.close()
          await second.close()
        }
      })

      it('rejects reads once closed, and closes idempotently', async () => {
        await store.batch([put('a', '1')], SYNC)
        const snapshot = store.snapshot()
        await snapshot.close()
        await snapshot.close()
        expect(await rejectionCode(snapshot.get('a'))).toBe('STORAGE_CLOSED')
        expect(await rejectionCode(snapshot.getMany(['a']))).toBe('STORAGE_CLOSED')
        expect(await rejectionCode(keysOf(snapshot))).toBe('STORAGE_CLOSED')
        expect(plain(await store.get('a'))).toEqual(Array.from(bytes('1')))
      })

      it('hands out a range in batches: the same entries as iterate, none larger than asked, frozen at the snapshot', async () => {
        const keys = Array.from({ length: 2500 }, (_, i) => `b/${String(i).padStart(4, '0')}`)
        await store.batch(keys.map((k) => put(k, `value of ${k}`)), SYNC)
        await store.batch([put('a', 'before'), put('c', 'after')], SYNC)
        const snapshot = store.snapshot()
        await store.batch([put('b/0100x', 'later'), del('b/2000')], SYNC)
        try {
          const sizes: number[] = []
          const seen: [string, number[]][] = []
          for await (const batch of snapshot.iterateBatches({ gte: 'b/', lt: 'b0' }, { entries: 700 })) {
            sizes.push(batch.length)
            for (const [key, value] of batch) seen.push([key, Array.from(value)])
          }
          expect(seen).toEqual(await collect(snapshot, { gte: 'b/', lt: 'b0' }))
          expect(seen.map(([k]) => k)).toEqual(keys)
          expect(Math.max(...sizes)).toBeLessThanOrEqual(700)
          expect(sizes.length).toBeGreaterThanOrEqual(4)
          // A byte budget cuts batches short (at least one entry each).
          let small = 0
          for await (const batch of snapshot.iterateBatches({ gte: 'b/', lt: 'b0', limit: 30 }, { bytes: 1 })) {
            expect(batch.length).toBeGreaterThanOrEqual(1)
            small += batch.length
          }
          expect(small).toBe(30)
        } finally {
          await snapshot.close()
        }
      })

      it('gives an iteration a point-in-time view of its own', async () => {
        const keys = Array.from({ length: 100 }, (_, i) => `i/${String(i).padStart(3, '0')}`)
        await store.batch(keys.map((k) => put(k, k)), SYNC)
        const seen: string[] = []
        for await (const [key] of store.iterate()) {
          if (seen.length === 0) await store.batch([put('i/050x', 'new'), del('i/099'), put('j', 'new')], SYNC)
          seen.push(key)
        }
        expect(seen).toEqual(keys)
      })
    })

    describe('resources', () => {
      it('releases the iterator when the consumer breaks early, so close does not hang', async () => {
        await store.batch(Array.from({ length: 200 }, (_, i) => put(`r/${String(i).padStart(3, '0')}`, 'v')), SYNC)
        for (let i = 0; i < 50; i++) {
          for await (const [key] of store.iterate({ gte: 'r/' })) {
            expect(key).toBe('r/000')
            break
          }
        }
        await expect(
          (async () => {
            for await (const _ of store.iterate({ reverse: true })) throw new Error('consumer failed')
          })(),
        ).rejects.toThrow('consumer failed')
        await store.batch([put('after', 'x')], SYNC)
        await within(store.close(), 5000, 'close after early breaks')
      })

      it('ends a running iteration when the store closes', async () => {
        await store.batch(Array.from({ length: 300 }, (_, i) => put(`c/${String(i).padStart(3, '0')}`, 'v')), SYNC)
        const iterator = store.iterate()[Symbol.asyncIterator]()
        expect((await iterator.next()).done).toBe(false)
        await within(store.close(), 5000, 'close during an iteration')
        const drain = async (): Promise<void> => {
          for (;;) if ((await iterator.next()).done === true) return
        }
        expect(await rejectionCode(drain())).toBe('STORAGE_CLOSED')
      })
    })

    describe('lifecycle', () => {
      it('rejects every operation after close with STORAGE_CLOSED', async () => {
        await store.batch([put('a', '1')], SYNC)
        const snapshot = store.snapshot()
        await store.close()
        expect(await rejectionCode(store.get('a'))).toBe('STORAGE_CLOSED')
        expect(await rejectionCode(store.getMany(['a']))).toBe('STORAGE_CLOSED')
        // Not an error: the caller reads with getMany, which says why.
        expect(store.getManyNow(['a'])).toBeUndefined()
        expect(await rejectionCode(keysOf(store))).toBe('STORAGE_CLOSED')
        expect(await rejectionCode(store.batch([put('b', '2')], SYNC))).toBe('STORAGE_CLOSED')
        expect(await rejectionCode(store.batch([], SYNC))).toBe('STORAGE_CLOSED')
        expect(await rejectionCode(store.approximateSize('a', 'z'))).toBe('STORAGE_CLOSED')
        expect(throwCode(() => store.snapshot())).toBe('STORAGE_CLOSED')
        // A snapshot taken before close is closed with the store.
        expect(await rejectionCode(snapshot.get('a'))).toBe('STORAGE_CLOSED')
        expect(await rejectionCode(keysOf(snapshot))).toBe('STORAGE_CLOSED')
        await snapshot.close()
      })

      it('rejects operations before open with STORAGE_CLOSED', async () => {
        const other = await create()
        try {
          expect(await rejectionCode(other.store.get('a'))).toBe('STORAGE_CLOSED')
          expect(await rejectionCode(other.store.batch([put('a', '1')], SYNC))).toBe('STORAGE_CLOSED')
          expect(await rejectionCode(keysOf(other.store))).toBe('STORAGE_CLOSED')
          expect(throwCode(() => other.store.snapshot())).toBe('STORAGE_CLOSED')
          await other.store.close() // closing a never-opened store is fine
        } finally {
          await other.store.close()
          await other.cleanup()
        }
      })

      it('opens and closes idempotently, and the same instance reopens with its data', async () => {
        await Promise.all([store.open(), store.open()])
        await store.open()
        await store.batch([put('a', '1')], SYNC)
        await store.close()
        await store.close()
        await Promise.all([store.close(), store.close()])
        await Promise.all([store.open(), store.open()])
        expect(plain(await store.get('a'))).toEqual(Array.from(bytes('1')))
        const stale = store.snapshot()
        await store.close()
        await store.open()
        // A snapshot of an earlier session stays closed.
        expect(await rejectionCode(stale.get('a'))).toBe('STORAGE_CLOSED')
      })

      // Only a durable store has a new instance to reopen the same data with.
      if (options.durable) it('keeps synced data across a reopen by a new instance', async () => {
        if (fixture.reopen === undefined) throw new Error('a durable store fixture must provide reopen')
        const keys = ['a', 'b\u0000c', '😀', '\uffff']
        await store.batch(keys.map((k) => put(k, k)), SYNC)
        await store.batch([del('a')], SYNC)
        await store.close()
        store = await fixture.reopen()
        await store.open()
        expect(await keysOf(store)).toEqual(['b\u0000c', '\uffff', '😀'])
        expect(plain(await store.get('😀'))).toEqual(Array.from(bytes('😀')))
        expect(await store.get('a')).toBeUndefined()
      })

      it('reports an approximate size: more than nothing for a range holding data, none for an empty range', async () => {
        // 8 MiB, twice LevelDB's default write buffer: some of it is in a table file, which is
        // what LevelDB's estimate counts (data still in the memtable counts as 0).
        for (let b = 0; b < 4; b++) await store.batch(Array.from({ length: 16 }, (_, i) => put(`s/${b}/${i}`, new Uint8Array(128 * 1024).fill(b + i))), SYNC)
        const size = await store.approximateSize('s/', 's0')
        expect(Number.isFinite(size)).toBe(true)
        expect(size).toBeGreaterThan(0)
        expect(size).toBeLessThanOrEqual(16 * 1024 * 1024)
        expect(await store.approximateSize('x', 'y')).toBe(0)
      })
    })
  })
}
