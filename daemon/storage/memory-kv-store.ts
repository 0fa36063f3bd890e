import { StorageError } from './errors.ts'
import { compareKeys, lowerBound, toStoredKey } from './key-order.ts'
import type { KvBatchOp, KvBatchOptions, KvRange, KvSnapshot, KvStore, KvWriteOptions } from './kv-store.ts'

const DEFAULT_BATCH_ENTRIES = 1000

/**
 * One version of the data: keys sorted in UTF-8 byte order, and their values. A version that a
 * snapshot or a running iteration holds (`readers > 0`) is never mutated: the next write copies
 * it first (copy-on-write), so taking a snapshot is O(1) and the first write after it O(n).
 */
interface Version {
  readonly keys: string[]
  readonly values: Map<string, Uint8Array>
  readers: number
}

/**
 * The in-memory {@link KvStore} for tests. It behaves like {@link LevelKvStore} wherever the
 * contract speaks: the same key order (UTF-8 bytes, lone surrogates stored as U+FFFD), the same
 * range rules, frozen snapshots, atomic batches, copies in and out (no caller can change stored
 * bytes), and `STORAGE_CLOSED` for anything done while closed. Closing keeps the data, so a
 * reopened instance sees it, as a reopened LevelDB would; closing also ends every snapshot and
 * running iteration, as LevelDB's close does.
 */
export class MemoryKvStore implements KvStore {
  #version: Version = { keys: [], values: new Map(), readers: 0 }
  #open = false
  /** Incremented by every close: snapshots and iterations of an earlier session are dead. */
  #session = 0

  /** Opens the store. Idempotent. */
  async open(): Promise<void> {
    this.#open = true
  }

  /** Closes the store, its snapshots and its running iterations. Idempotent. */
  async close(): Promise<void> {
    if (!this.#open) return
    this.#open = false
    this.#session++
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#assertOpen()
    return copyOut(this.#version.values.get(toStoredKey(key)))
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    this.#assertOpen()
    const values = this.#version.values
    return keys.map((key) => copyOut(values.get(toStoredKey(key))))
  }

  getManyNow(keys: readonly string[]): (Uint8Array | undefined)[] | undefined {
    if (!this.#open) return undefined
    const values = this.#version.values
    return keys.map((key) => copyOut(values.get(toStoredKey(key))))
  }

  iterate(range: KvRange = {}): AsyncIterable<[string, Uint8Array]> {
    const session = this.#session
    return iterateVersion(
      () => {
        this.#assertOpen()
        return this.#version
      },
      () => this.#open && this.#session === session,
      range,
    )
  }

  async batch(ops: readonly KvBatchOp[], _options: KvWriteOptions): Promise<void> {
    this.#assertOpen()
    // Check every op before touching anything, so that a bad op leaves the store as it was.
    for (const op of ops) {
      if (typeof op.key !== 'string' || (op.type !== 'put' && op.type !== 'del')) {
        throw new StorageError('STORAGE_FAILURE', 'batch: invalid operation')
      }
      if (op.type === 'put' && !(op.value instanceof Uint8Array)) {
        throw new StorageError('STORAGE_FAILURE', 'batch: a put needs a Uint8Array value')
      }
    }
    if (ops.length === 0) return
    const version = this.#writableVersion()
    const { keys, values } = version
    for (const op of ops) {
      const key = toStoredKey(op.key)
      if (op.type === 'put') {
        if (!values.has(key)) keys.splice(lowerBound(keys, key), 0, key)
        values.set(key, new Uint8Array(op.value))
      } else if (values.delete(key)) {
        keys.splice(lowerBound(keys, key), 1)
      }
    }
  }

  snapshot(): KvSnapshot {
    this.#assertOpen()
    const version = this.#version
    version.readers++
    const session = this.#session
    return new MemorySnapshot(version, () => this.#open && this.#session === session)
  }

  /** Bytes of the keys (UTF-8) and values in [gte, lt): exact, where LevelDB's is approximate. */
  async approximateSize(gte: string, lt: string): Promise<number> {
    this.#assertOpen()
    const { keys, values } = this.#version
    const end = lowerBound(keys, toStoredKey(lt))
    let size = 0
    for (let i = lowerBound(keys, toStoredKey(gte)); i < end; i++) {
      const key = keys[i] as string
      size += Buffer.byteLength(key, 'utf8') + (values.get(key)?.byteLength ?? 0)
    }
    return size
  }

  #assertOpen(): void {
    if (!this.#open) throw new StorageError('STORAGE_CLOSED', 'the store is not open')
  }

  /** The current version, copied first if a reader holds it. */
  #writableVersion(): Version {
    if (this.#version.readers > 0) {
      this.#version = { keys: this.#version.keys.slice(), values: new Map(this.#version.values), readers: 0 }
    }
    return this.#version
  }
}

class MemorySnapshot implements KvSnapshot {
  readonly #version: Version
  readonly #storeAlive: () => boolean
  #closed = false

  constructor(version: Version, storeAlive: () => boolean) {
    this.#version = version
    this.#storeAlive = storeAlive
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#assertOpen()
    return copyOut(this.#version.values.get(toStoredKey(key)))
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    this.#assertOpen()
    return keys.map((key) => copyOut(this.#version.values.get(toStoredKey(key))))
  }

  iterate(range: KvRange = {}): AsyncIterable<[string, Uint8Array]> {
    return iterateVersion(
      () => {
        this.#assertOpen()
        return this.#version
      },
      () => this.#isOpen(),
      range,
    )
  }

  async *iterateBatches(range: KvRange = {}, options: KvBatchOptions = {}): AsyncGenerator<readonly [string, Uint8Array][]> {
    const most = Math.max(1, options.entries ?? DEFAULT_BATCH_ENTRIES)
    let batch: [string, Uint8Array][] = []
    for await (const entry of this.iterate(range)) {
      batch.push(entry)
      if (batch.length >= most) {
        yield batch
        batch = []
      }
    }
    if (batch.length > 0) yield batch
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#version.readers--
  }

  #isOpen(): boolean {
    return !this.#closed && this.#storeAlive()
  }

  #assertOpen(): void {
    if (!this.#isOpen()) throw new StorageError('STORAGE_CLOSED', 'the snapshot is closed')
  }
}

/**
 * Yields the range of the version that `begin` returns (read on the first `next()`, as LevelDB
 * takes its implicit snapshot when the iterator starts). `alive` is checked before every entry.
 */
async function* iterateVersion(begin: () => Version, alive: () => boolean, range: KvRange): AsyncGenerator<[string, Uint8Array]> {
  const version = begin()
  version.readers++
  try {
    const { keys, values } = version
    let lo = 0
    let hi = keys.length
    // As in abstract-level: gte beats gt, lte beats lt.
    if (range.gte !== undefined) lo = lowerBound(keys, toStoredKey(range.gte))
    else if (range.gt !== undefined) lo = upperBound(keys, toStoredKey(range.gt))
    if (range.lte !== undefined) hi = upperBound(keys, toStoredKey(range.lte))
    else if (range.lt !== undefined) hi = lowerBound(keys, toStoredKey(range.lt))
    const limit = range.limit !== undefined && Number.isInteger(range.limit) && range.limit >= 0 ? range.limit : Infinity
    const count = Math.min(Math.max(hi - lo, 0), limit)
    for (let n = 0; n < count; n++) {
      if (!alive()) throw new StorageError('STORAGE_CLOSED', 'the store was closed during iteration')
      const key = keys[range.reverse === true ? hi - 1 - n : lo + n] as string
      yield [key, copyOut(values.get(key)) as Uint8Array]
    }
  } finally {
    version.readers--
  }
}

function copyOut(value: Uint8Array | undefined): Uint8Array | undefined {
  return value === undefined ? undefined : new Uint8Array(value)
}

/** First index whose key is > `key`. */
function upperBound(keys: readonly string[], key: string): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareKeys(keys[mid] as string, key) <= 0) lo = mid + 1
    else hi = mid
  }
  return lo
}
