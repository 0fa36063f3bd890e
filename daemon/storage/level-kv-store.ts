import { randomBytes } from 'node:crypto'
import { copyFile, link, mkdir, readdir, rm, stat, statfs } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { Level } from 'level'
import type { Iterator as LevelIterator, IteratorOptions } from 'level'
import { failpoints } from '../failpoints.ts'
import { StorageError, type StorageErrorCode } from './errors.ts'
import type { KvBatchOp, KvBatchOptions, KvCheckpoint, KvRange, KvSnapshot, KvStore, KvWriteOptions } from './kv-store.ts'

/** Options of {@link LevelKvStore}, passed on to LevelDB. */
export interface LevelKvStoreOptions {
  /** Bytes of LevelDB's block cache (LevelDB default: 8 MiB). */
  readonly cacheSize?: number
  /** Bytes of the memtable before it is flushed to a table file (LevelDB default: 4 MiB). */
  readonly writeBufferSize?: number
  /**
   * After a failed write, the free bytes the disk must report before the database is reopened
   * (default: twice the write buffer plus 1 MiB, room for LevelDB's recovery to flush its log).
   */
  readonly reopenMinFreeBytes?: number
  /** After a failed write, the least time between two attempts to reopen with room on the disk, ms (default 1000). */
  readonly reopenIntervalMs?: number
  /**
   * A checkpoint first waits this long at most, ms, for the snapshots and iterators open at that
   * moment to be closed (default 2000); those still open then are closed with the database.
   */
  readonly checkpointDrainMs?: number
}

const DEFAULT_WRITE_BUFFER = 4 * 1024 * 1024

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
 *
 * A failed write (a full disk: `STORAGE_FULL`, or any other I/O error) leaves LevelDB's write-ahead
 * log with a torn record at its end, and LevelDB 1.20 keeps appending after it: on the next
 * recovery the reader then drops every later record of the log (checksum mismatch), so writes
 * acknowledged after the failure would be lost by a crash. A background error (a compaction that
 * hit the full disk) also fails every later write until the database is reopened. So after a
 * failed write no write reaches LevelDB until it has been closed and reopened (its recovery
 * replays the log up to the torn record and starts a new one): each later write first tries to
 * reopen, once the disk has `reopenMinFreeBytes` free and at most once per `reopenIntervalMs`,
 * and is refused with the failure's error until that works. Reads go on meanwhile, and
 * wait out a reopen rather than fail. Writes are serialized, so none is in flight when one fails.
 */
export class LevelKvStore implements KvStore {
  readonly #location: string
  readonly #options: LevelKvStoreOptions
  #db: Db | undefined
  /** Writes run one after another on this chain. */
  #writes: Promise<void> = Promise.resolve()
  /** Set when a write failed: no write may reach LevelDB before it is reopened. */
  #failure: StorageError | undefined
  #lastReopenAt = 0
  /** Set while a reopen after a failed write is under way (reads wait for it). */
  #reopening: Promise<void> | undefined
  /** Closed by {@link close} (not by a reopen). */
  #closed = false
  /** Set while a checkpoint waits for readers and copies the files (new iterators and snapshots wait for it). */
  #pausing: Promise<void> | undefined
  /** Open snapshots and iterators (on the database, not on a snapshot). */
  #readers = 0
  /** Called each time {@link #readers} drops to 0. */
  #onDrained: (() => void)[] = []

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
    this.#closed = false
    try {
      await this.#db.open()
    } catch (err) {
      // abstract-level reports every failed open as LEVEL_DATABASE_NOT_OPEN; the reason is the cause.
      throw new StorageError(hasLevelCode(err, 'LEVEL_CORRUPTION') ? 'STORAGE_CORRUPT' : 'STORAGE_FAILURE', `cannot open the database at ${this.#location}`, { cause: err })
    }
    // Only once open: LevelDB's lock says no other process has the database (and makes a
    // checkpoint of it), so what is left beside it is a crash's.
    await this.#removeCheckpoints()
  }

  /** Closes LevelDB, and with it every open snapshot and iterator. Idempotent. */
  async close(): Promise<void> {
    if (this.#db === undefined) return
    this.#closed = true
    try {
      await this.#db.close()
    } catch (err) {
      throw new StorageError(hasLevelCode(err, 'LEVEL_CORRUPTION') ? 'STORAGE_CORRUPT' : 'STORAGE_FAILURE', `cannot close the database at ${this.#location}`, { cause: err })
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    // Point reads end quickly: they wait only for a reopen, not for a checkpoint's drain.
    await this.#afterReopen()
    return levelGet(this.#openDb(), key, undefined)
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    await this.#afterReopen()
    return levelGetMany(this.#openDb(), keys, undefined)
  }

  getManyNow(keys: readonly string[]): (Uint8Array | undefined)[] | undefined {
    const db = this.#db
    if (this.#reopening || db?.status !== 'open') return undefined
    try {
      // classic-level's getSync: LevelDB's Get on this thread (memtable, block cache, mmap'd tables).
      return keys.map((key) => db.getSync(key) as Uint8Array | undefined)
    } catch (err) {
      throw wrapLevelError(err, 'get')
    }
  }

  iterate(range: KvRange = {}): AsyncIterable<[string, Uint8Array]> {
    return levelIterate(
      async () => {
        await this.whenOpen()
        return this.#openDb()
      },
      range,
      undefined,
      this.#readerTracker,
    )
  }

  /** Counts the open iterators and snapshots, so that a checkpoint can wait for them. */
  readonly #readerTracker: ReaderTracker = {
    opened: () => {
      this.#readers++
    },
    closed: () => this.#readerDone(),
  }

  #readerDone(): void {
    if (--this.#readers > 0) return
    const drained = this.#onDrained
    this.#onDrained = []
    for (const f of drained) f()
  }

  /** Whether writes are refused until a reopen succeeds (a write failed; see the class comment). */
  get writeFailure(): StorageError | undefined {
    return this.#failure
  }

  batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void> {
    const run = this.#writes.then(() => this.#batch(ops, options))
    this.#writes = run.then(
      () => undefined,
      () => undefined,
    )
    return run
  }

  async #batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void> {
    if (this.#failure) await this.#reopenAfterFailure(this.#failure)
    const db = this.#openDb()
    // A chained batch: about half the main-thread cost per op of an array batch, which
    // abstract-level copies and normalizes op by op before the binding reads each object.
    const batch = db.batch()
    try {
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value)
        else batch.del(op.key)
      }
      await batch.write({ sync: options.sync })
    } catch (err) {
      await batch.close()
      const wrapped = wrapLevelError(err, 'batch')
      // An I/O error may have left a torn record in the log: no more writes until reopened.
      if (isWriteFailure(err) && !failpoints.writeAfterFailure) this.#failure = wrapped
      throw wrapped
    }
  }

  /** Free bytes the disk must have for LevelDB's recovery on a reopen. */
  #reopenMinFree(): number {
    return this.#options.reopenMinFreeBytes ?? 2 * (this.#options.writeBufferSize ?? DEFAULT_WRITE_BUFFER) + 1024 * 1024
  }

  /** Closes and reopens LevelDB once that can work; throws (a copy of) `failure` until then. */
  async #reopenAfterFailure(failure: StorageError): Promise<void> {
    const refuse = (f = failure): StorageError => new StorageError(f.code as StorageErrorCode, f.message, { cause: f.cause })
    const minFree = this.#reopenMinFree()
    const free = await freeBytes(this.#location)
    if (free !== undefined && free < minFree) throw refuse()
    const interval = this.#options.reopenIntervalMs ?? 1000
    if (Date.now() - this.#lastReopenAt < interval) throw refuse()
    this.#lastReopenAt = Date.now()
    const db = this.#db
    if (db === undefined || this.#closed) throw notOpen()
    const reopening = (async () => {
      // Closed already when an earlier attempt failed to open it again.
      if (db.status !== 'closed') await db.close()
      await db.open()
    })()
    this.#reopening = reopening
    try {
      await reopening
    } catch (err) {
      // Still failing (LevelDB's recovery needs room too): stay refused, try again later. The
      // database may be closed now; a later reopen attempt opens it again.
      if (isDiskFull(err)) this.#failure = wrapLevelError(err, 'reopen')
      throw refuse(this.#failure)
    } finally {
      this.#reopening = undefined
    }
    this.#failure = undefined
  }

  /**
   * The database's files as of one moment, in a new directory beside the database
   * (`<location>.checkpoint-<random>`), with a snapshot of that same moment. LevelDB cannot copy
   * itself while it runs (a compaction may replace and delete table files and rewrite its
   * manifest at any time). So this first lets the snapshots and iterators that are open end
   * (new ones wait; at most `checkpointDrainMs`, after which those still open are closed with the
   * database and fail with STORAGE_CLOSED), then waits for the write in flight, closes the
   * database, hard-links its table files (immutable once written; copied where links fail) and
   * copies the rest (the manifest, CURRENT and the write-ahead log), reopens it and takes the
   * snapshot before any other write. Writes and reads wait for the reopen, a few milliseconds.
   * The caller removes the directory ({@link KvCheckpoint.remove}); {@link open} removes any a
   * crash left.
   */
  async checkpoint(): Promise<KvCheckpoint> {
    // One checkpoint at a time: the next one waits for this one's pause to end.
    while (this.#pausing) await this.#pausing.catch(() => undefined)
    let resume!: () => void
    this.#pausing = new Promise<void>((resolve) => (resume = resolve))
    try {
      await this.#drainReaders(this.#options.checkpointDrainMs ?? 2000)
      const copy = this.#writes.then(() => this.#checkpoint())
      this.#writes = copy.then(
        () => undefined,
        () => undefined,
      )
      return await copy
    } finally {
      this.#pausing = undefined
      resume()
    }
  }

  /** Resolves once no snapshot or iterator is open, or after `ms`. */
  async #drainReaders(ms: number): Promise<void> {
    if (this.#readers === 0) return
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve) => {
      this.#onDrained.push(resolve)
      timer = setTimeout(resolve, ms)
    })
    clearTimeout(timer)
  }

  async #checkpoint(): Promise<KvCheckpoint> {
    if (this.#failure) await this.#reopenAfterFailure(this.#failure)
    const db = this.#openDb()
    // The copy of the log and the reopen (LevelDB's recovery writes a table and a manifest) need
    // room: without it the database could not be opened again until space is freed.
    const free = await freeBytes(this.#location)
    const needed = this.#reopenMinFree() + (await logBytes(this.#location))
    if (free !== undefined && free < needed) {
      throw new StorageError('STORAGE_FULL', `checkpoint: ${free} bytes free on the disk holding the database, ${needed} needed to copy its log and reopen it`)
    }
    const dir = `${this.#location}.checkpoint-${randomBytes(6).toString('hex')}`
    const remove = (): Promise<void> => rm(dir, { recursive: true, force: true })
    let files: string[] = []
    const copying = (async () => {
      await db.close()
      try {
        await mkdir(dir)
        files = await copyDbFiles(this.#location, dir)
      } finally {
        await db.open()
      }
    })()
    this.#reopening = copying
    try {
      await copying
    } catch (err) {
      await remove()
      // Not open again (its recovery failed, say on a full disk): writes are refused until a
      // reopen works, as after a failed write.
      if (db.status !== 'open') this.#failure = wrapLevelError(err, 'reopen')
      throw wrapLevelError(err, 'checkpoint')
    } finally {
      this.#reopening = undefined
    }
    let snapshot: KvSnapshot
    try {
      snapshot = this.snapshot()
    } catch (err) {
      await remove()
      throw err
    }
    return { dir, files, snapshot, remove }
  }

  /** Removes the checkpoint directories a crash left beside the database. */
  async #removeCheckpoints(): Promise<void> {
    const prefix = `${basename(this.#location)}.checkpoint-`
    const parent = dirname(this.#location)
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      if (name.startsWith(prefix)) await rm(join(parent, name), { recursive: true, force: true })
    }
  }

  /**
   * Resolves once the store can take a snapshot or open an iterator: at once, or when a reopen
   * (after a failed write) or a checkpoint under way is over. Iterators wait for it themselves.
   */
  async whenOpen(): Promise<void> {
    while (this.#pausing || this.#reopening) {
      await this.#pausing?.catch(() => undefined)
      await this.#afterReopen()
    }
  }

  /** Resolves once no reopen (after a failed write, or for a checkpoint) is under way. */
  async #afterReopen(): Promise<void> {
    if (this.#reopening) await this.#reopening.catch(() => undefined)
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
    return new LevelSnapshot(db, snapshot, this.#readerTracker)
  }

  async approximateSize(gte: string, lt: string): Promise<number> {
    await this.#afterReopen()
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

/** Bytes of LevelDB's write-ahead logs in `dir`. */
async function logBytes(dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) if (name.endsWith('.log')) total += (await stat(join(dir, name)).catch(() => ({ size: 0 }))).size
  return total
}

/** The names of the files a copy of a LevelDB database needs: tables, logs, the manifest, CURRENT (not LOCK or the info log). */
export const LEVELDB_FILE_NAME = /^(\d+\.(ldb|sst|log)|MANIFEST-\d+|CURRENT)$/

/** LevelDB's files a copy needs ({@link LEVELDB_FILE_NAME}): table files hard-linked, the rest copied. */
async function copyDbFiles(from: string, to: string): Promise<string[]> {
  const names = (await readdir(from)).filter((n) => LEVELDB_FILE_NAME.test(n)).sort()
  for (const name of names) {
    const source = join(from, name)
    const target = join(to, name)
    if (/\.(ldb|sst)$/.test(name)) {
      try {
        await link(source, target)
        continue
      } catch {
        // Another file system, or links not allowed: copy.
      }
    }
    await copyFile(source, target)
  }
  return names
}

/** Free bytes for unprivileged users on the file system holding `path` (undefined if unknown). */
async function freeBytes(path: string): Promise<number | undefined> {
  try {
    const s = await statfs(path)
    return s.bavail * s.bsize
  } catch {
    return undefined
  }
}

/** Told when an iterator or snapshot of the database opens and when it closes. */
interface ReaderTracker {
  opened(): void
  closed(): void
}

/** An explicit LevelDB snapshot; reads pass it as `{ snapshot }`. Closed with the database. */
class LevelSnapshot implements KvSnapshot {
  readonly #db: Db
  readonly #snapshot: DbSnapshot
  readonly #tracker: ReaderTracker | undefined
  #closed = false

  constructor(db: Db, snapshot: DbSnapshot, tracker?: ReaderTracker) {
    this.#db = db
    this.#snapshot = snapshot
    this.#tracker = tracker
    tracker?.opened()
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return levelGet(this.#db, key, this.#snapshot)
  }

  getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    return levelGetMany(this.#db, keys, this.#snapshot)
  }

  iterate(range: KvRange = {}): AsyncIterable<[string, Uint8Array]> {
    return levelIterate(() => Promise.resolve(this.#db), range, this.#snapshot)
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      this.#tracker?.closed()
    }
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
async function* levelIterate(getDb: () => Promise<Db>, range: KvRange, snapshot: DbSnapshot | undefined, tracker?: ReaderTracker): AsyncGenerator<[string, Uint8Array]> {
  const db = await getDb()
  let iterator: LevelIterator<Db, string, Uint8Array>
  try {
    iterator = db.iterator<string, Uint8Array>(iteratorOptions(range, snapshot))
  } catch (err) {
    throw wrapLevelError(err, 'iterator')
  }
  tracker?.opened()
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
    try {
      await closeIterator(iterator, failed)
    } finally {
      tracker?.closed()
    }
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
  // Before the closed codes: a reopen that hits a full disk fails as LEVEL_DATABASE_NOT_OPEN.
  if (isDiskFull(err)) {
    return new StorageError('STORAGE_FULL', `${operation}: the disk holding the database is full; writes are refused until space is freed`, { cause: err })
  }
  const code = levelCode(err)
  if (code !== undefined && CLOSED_CODES.has(code)) {
    return new StorageError('STORAGE_CLOSED', `${operation}: the store is not open`, { cause: err })
  }
  if (hasLevelCode(err, 'LEVEL_CORRUPTION')) {
    return new StorageError('STORAGE_CORRUPT', `${operation}: the database is corrupt`, { cause: err })
  }
  return new StorageError('STORAGE_FAILURE', `${operation} failed`, { cause: err })
}

/** LevelDB reports ENOSPC / EDQUOT as an IO error whose message is strerror's text. */
const DISK_FULL = /No space left on device|Disk quota exceeded|\bENOSPC\b|\bEDQUOT\b/

/** Whether `err` (or a cause) says the disk is full. */
function isDiskFull(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 8) return false
  const { message, cause } = err as { message?: unknown; cause?: unknown }
  if (typeof message === 'string' && DISK_FULL.test(message)) return true
  if (levelCode(err) === 'ENOSPC' || levelCode(err) === 'EDQUOT') return true
  return isDiskFull(cause, depth + 1)
}

/** A write that LevelDB attempted and failed (I/O or a background error), as opposed to a refused argument. */
function isWriteFailure(err: unknown): boolean {
  return hasLevelCode(err, 'LEVEL_IO_ERROR') || hasLevelCode(err, 'LEVEL_CORRUPTION') || isDiskFull(err)
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
