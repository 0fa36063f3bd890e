import { mkdir } from 'node:fs/promises'
import { Level } from 'level'
import type { Iterator as LevelIterator, IteratorOptions } from 'level'
import { StorageError } from './errors.ts'
import type { KvBatchOp, KvBatchOptions, KvRange, KvSnapshot, KvStore, KvWriteOptions } from './kv-store.ts'

/** Options of {@link LevelKvStore}, passed on to LevelDB. */
export interface LevelKvStoreOptions {
  /** Bytes of LevelDB's block cache (LevelDB default: 8 MiB). */
  readonly cacheSize?: number
  /** Bytes of the memtable before it is flushed to a table file (LevelDB default: 4 MiB). */
  readonly writeBufferSize?: number
}

type Db = Level<string, Uint8Array>
type DbSnapshot = ReturnType<Db['snapshot']>

/**
 * classic-level's extra method. `level`'s own typings describe the universal (browser + Node)
 * class and leave it out, although on Node `Level` is classic-level's `ClassicLevel`.
 */
interface ApproximateSize {
  approximateSize(start: string, end: string): Promise<number>
}

/** Entries fetched by the first `nextv` of an iteration; doubles per call up to the maximum. */
const FIRST_CHUNK = 16
const MAX_CHUNK = 1024
/** Defaults of {@link LevelSnapshot.iterateBatches}. */
const BATCH_ENTRIES = 1000
const BATCH_BYTES = 1024 * 1024

/**
 * The {@link KvStore} of a real node: LevelDB through `level` (classic-level on Node), string keys
 * (UTF-8, so keys sort in UTF-8 byte order) and byte values. Every failure surfaces as a
 * {@link StorageError}: `STORAGE_CLOSED` when the store is not open, `STORAGE_CORRUPT` when
 * LevelDB reports corruption, `STORAGE_FAILURE` otherwise, with the level error as `cause`.
 *
 * Values come back as Node `Buffer`s (a `Uint8Array` subclass, each with its own memory): the
 * `'view'` encoding passes classic-level's buffers through unconverted.
 *
 * The database is created lazily by {@link open} (a `Level` opens itself as soon as it is
 * constructed, which would take the directory's lock before anyone asked for it).
 */
export class LevelKvStore implements KvStore {
  readonly #location: string
  readonly #options: LevelKvStoreOptions
  #db: Db | undefined

  constructor(location: string, options: LevelKvStoreOptions = {}) {
    this.#location = location
    this.#options = options
  }

  /** Directory of the database. */
  get location(): string {
    return this.#location
  }

  /** Creates the directory (and parents) if needed and opens LevelDB. Idempotent; reopens after {@link close}. */
  async open(): Promise<void> {
    try {
      await mkdir(this.#location, { recursive: true })
    } catch (err) {
      throw new StorageError('STORAGE_FAILURE', `cannot create the database directory ${this.#location}`, { cause: err })
    }
    // Construct and open in the same synchronous step, so concurrent open() calls share one instance.
    this.#db ??= new Level<string, Uint8Array>(this.#location, {
      keyEncoding: 'utf8',
      valueEncoding: 'view',
      ...(this.#options.cacheSize !== undefined ? { cacheSize: this.#options.cacheSize } : {}),
      ...(this.#options.writeBufferSize !== undefined ? { writeBufferSize: this.#options.writeBufferSize } : {}),
    })
    try {
      await this.#db.open()
    } catch (err) {
      // abstract-level reports every failed open as LEVEL_DATABASE_NOT_OPEN; the reason is the cause.
      throw new StorageError(hasLevelCode(err, 'LEVEL_CORRUPTION') ? 'STORAGE_CORRUPT' : 'STORAGE_FAILURE', `cannot open the database at ${this.#location}`, { cause: err })
    }
  }

  /** Closes LevelDB, and with it every open snapshot and iterator. Idempotent. */
  async close(): Promise<void> {
    if (this.#db === undefined) return
    try {
      await this.#db.close()
    } catch (err) {
      throw new StorageError(hasLevelCode(err, 'LEVEL_CORRUPTION') ? 'STORAGE_CORRUPT' : 'STORAGE_FAILURE', `cannot close the database at ${this.#location}`, { cause: err })
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return levelGet(this.#openDb(), key, undefined)
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    return levelGetMany(this.#openDb(), keys, undefined)
  }

  iterate(range: KvRange = {}): AsyncIterable<[string, Uint8Array]> {
    return levelIterate(() => this.#openDb(), range, undefined)
  }

  async batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void> {
    const db = this.#openDb()
    try {
      await db.batch(
        ops.map((op) => (op.type === 'put' ? { type: 'put' as const, key: op.key, value: op.value } : { type: 'del' as const, key: op.key })),
        { sync: options.sync },
      )
    } catch (err) {
      throw wrapLevelError(err, 'batch')
    }
  }

  /** An explicit LevelDB snapshot. Throws STORAGE_CLOSED unless open (an opening store cannot take one yet). */
  snapshot(): KvSnapshot {
    const db = this.#db
    if (db === undefined) throw notOpen()
    let snapshot: DbSnapshot
    try {
      snapshot = db.snapshot()
    } catch (err) {
      throw wrapLevelError(err, 'snapshot')
    }
    return new LevelSnapshot(db, snapshot)
  }

  async approximateSize(gte: string, lt: string): Promise<number> {
    const db = this.#openDb()
    try {
      return await (db as unknown as ApproximateSize).approximateSize(gte, lt)
    } catch (err) {
      throw wrapLevelError(err, 'approximateSize')
    }
  }

  /** The database, or STORAGE_CLOSED. An opening database is fine: level queues the operation. */
  #openDb(): Db {
    const db = this.#db
    if (db === undefined || db.status === 'closed' || db.status === 'closing') throw notOpen()
    return db
  }
}

/** An explicit LevelDB snapshot; reads pass it as `{ snapshot }`. Closed with the database. */
class LevelSnapshot implements KvSnapshot {
  readonly #db: Db
  readonly #snapshot: DbSnapshot

  constructor(db: Db, snapshot: DbSnapshot) {
    this.#db = db
    this.#snapshot = snapshot
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return levelGet(this.#db, key, this.#snapshot)
  }

  getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    return levelGetMany(this.#db, keys, this.#snapshot)
  }

  iterate(range: KvRange = {}): AsyncIterable<[string, Uint8Array]> {
    return levelIterate(() => this.#db, range, this.#snapshot)
  }

  async close(): Promise<void> {
    try {
      await this.#snapshot.close()
    } catch (err) {
      throw wrapLevelError(err, 'snapshot close')
    }
  }

  iterateBatches(range: KvRange = {}, options: KvBatchOptions = {}): AsyncIterable<readonly [string, Uint8Array][]> {
    return levelIterateBatches(this.#db, range, this.#snapshot, options)
  }
}

async function levelGet(db: Db, key: string, snapshot: DbSnapshot | undefined): Promise<Uint8Array | undefined> {
  try {
    // level's typings say Promise<V>; classic-level resolves undefined for a missing key.
    return (await (snapshot === undefined ? db.get(key) : db.get(key, { snapshot }))) as Uint8Array | undefined
  } catch (err) {
    throw wrapLevelError(err, 'get')
  }
}

async function levelGetMany(db: Db, keys: readonly string[], snapshot: DbSnapshot | undefined): Promise<(Uint8Array | undefined)[]> {
  try {
    const list = [...keys]
    return (await (snapshot === undefined ? db.getMany(list) : db.getMany(list, { snapshot }))) as (Uint8Array | undefined)[]
  } catch (err) {
    throw wrapLevelError(err, 'getMany')
  }
}

/**
 * Iterates with `nextv` in growing chunks and always closes the level iterator: on the natural
 * end, on an error, and when the consumer leaves the loop early (the generator's `finally`).
 */
async function* levelIterate(getDb: () => Db, range: KvRange, snapshot: DbSnapshot | undefined): AsyncGenerator<[string, Uint8Array]> {
  const db = getDb()
  let iterator: LevelIterator<Db, string, Uint8Array>
  try {
    iterator = db.iterator<string, Uint8Array>(iteratorOptions(range, snapshot))
  } catch (err) {
    throw wrapLevelError(err, 'iterator')
  }
  let failed = false
  try {
    let size = FIRST_CHUNK
    for (;;) {
      let entries: [string, Uint8Array][]
      try {
        entries = await iterator.nextv(size)
      } catch (err) {
        throw wrapLevelError(err, 'iterate')
      }
      if (entries.length === 0) return
      yield* entries
      size = Math.min(size * 2, MAX_CHUNK)
    }
  } catch (err) {
    failed = true
    throw err
  } finally {
    await closeIterator(iterator, failed)
  }
}

/**
 * `nextv` batches as LevelDB hands them over, sized by entries and bytes (classic-level's
 * `highWaterMarkBytes`, whose 16 KiB default would cut a bulk read into thousands of round trips
 * to the thread pool). Closes the iterator like {@link levelIterate}.
 */
async function* levelIterateBatches(db: Db, range: KvRange, snapshot: DbSnapshot, options: KvBatchOptions): AsyncGenerator<readonly [string, Uint8Array][]> {
  let iterator: LevelIterator<Db, string, Uint8Array>
  try {
    iterator = db.iterator<string, Uint8Array>({ ...iteratorOptions(range, snapshot), highWaterMarkBytes: Math.max(1, options.bytes ?? BATCH_BYTES) } as IteratorOptions<string, Uint8Array>)
  } catch (err) {
    throw wrapLevelError(err, 'iterator')
  }
  const entries = Math.max(1, options.entries ?? BATCH_ENTRIES)
  let failed = false
  try {
    for (;;) {
      let batch: [string, Uint8Array][]
      try {
        batch = await iterator.nextv(entries)
      } catch (err) {
        throw wrapLevelError(err, 'iterate')
      }
      if (batch.length === 0) return
      yield batch
    }
  } catch (err) {
    failed = true
    throw err
  } finally {
    await closeIterator(iterator, failed)
  }
}

/** Closes a level iterator; a failed close is surfaced unless an earlier error is already on its way out. */
async function closeIterator(iterator: LevelIterator<Db, string, Uint8Array>, failed: boolean): Promise<void> {
  try {
    await iterator.close()
  } catch (err) {
    if (!failed) throw wrapLevelError(err, 'iterator close')
  }
}

/**
 * Level options for a range. Bounds go in only when defined: abstract-level encodes a present
 * `gt: undefined` as the string `'undefined'` instead of ignoring it.
 */
function iteratorOptions(range: KvRange, snapshot: DbSnapshot | undefined): IteratorOptions<string, Uint8Array> {
  const options: IteratorOptions<string, Uint8Array> = { reverse: range.reverse === true }
  if (range.gt !== undefined) options.gt = range.gt
  if (range.gte !== undefined) options.gte = range.gte
  if (range.lt !== undefined) options.lt = range.lt
  if (range.lte !== undefined) options.lte = range.lte
  if (range.limit !== undefined) options.limit = range.limit
  if (snapshot !== undefined) options.snapshot = snapshot
  return options
}

function notOpen(): StorageError {
  return new StorageError('STORAGE_CLOSED', 'the store is not open')
}

const CLOSED_CODES = new Set(['LEVEL_DATABASE_NOT_OPEN', 'LEVEL_ITERATOR_NOT_OPEN', 'LEVEL_SNAPSHOT_NOT_OPEN', 'LEVEL_BATCH_NOT_OPEN'])

/** Maps a level error to a {@link StorageError}, keeping it as the cause. */
function wrapLevelError(err: unknown, operation: string): StorageError {
  if (err instanceof StorageError) return err
  const code = levelCode(err)
  if (code !== undefined && CLOSED_CODES.has(code)) {
    return new StorageError('STORAGE_CLOSED', `${operation}: the store is not open`, { cause: err })
  }
  if (hasLevelCode(err, 'LEVEL_CORRUPTION')) {
    return new StorageError('STORAGE_CORRUPT', `${operation}: the database is corrupt`, { cause: err })
  }
  return new StorageError('STORAGE_FAILURE', `${operation} failed`, { cause: err })
}

function levelCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? code : undefined
}

/** Whether `err`, its causes or its combined errors (abstract-level's CombinedError is iterable) carry `code`. */
function hasLevelCode(err: unknown, code: string, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 8) return false
  if (levelCode(err) === code) return true
  if (hasLevelCode((err as { cause?: unknown }).cause, code, depth + 1)) return true
  const nested = err instanceof AggregateError ? err.errors : (err as { name?: unknown }).name === 'CombinedError' ? [...(err as Iterable<unknown>)] : []
  return nested.some((e) => hasLevelCode(e, code, depth + 1))
}
