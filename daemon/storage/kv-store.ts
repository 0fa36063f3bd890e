/**
 * The narrow storage interface everything in daemon/ persists through: an ordered map of string
 * keys to byte values with atomic batches and point-in-time snapshots. LevelDB implements it for
 * real nodes ({@link LevelKvStore}); memory implements it for tests ({@link MemoryKvStore}).
 */

/** One operation of an atomic batch. */
export type KvBatchOp = { readonly type: 'put'; readonly key: string; readonly value: Uint8Array } | { readonly type: 'del'; readonly key: string }

/**
 * A key range, in key order: UTF-8 byte order of the keys, which is code-point order (not JS `<`,
 * which puts astral characters before U+E000..U+FFFF). `gte` beats `gt` and `lte` beats `lt`
 * when both are given.
 */
export interface KvRange {
  readonly gt?: string
  readonly gte?: string
  readonly lt?: string
  readonly lte?: string
  readonly reverse?: boolean
  /** Most entries to yield; absent or -1 for no limit. */
  readonly limit?: number
}

/** A read-only point-in-time view of the store. Close it when done. */
export interface KvReader {
  get(key: string): Promise<Uint8Array | undefined>
  getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]>
  /** Entries in the range, in order. Breaking out of the loop releases the iterator. */
  iterate(range?: KvRange): AsyncIterable<[string, Uint8Array]>
}

/** Sizing of {@link KvSnapshot.iterateBatches}. */
export interface KvBatchOptions {
  /** Most entries per batch (default 1000). */
  readonly entries?: number
  /** A batch ends once its keys and values reach this many bytes (default 1 MiB; at least one entry). */
  readonly bytes?: number
}

/** A snapshot: a {@link KvReader} frozen at the moment it was taken. */
export interface KvSnapshot extends KvReader {
  /**
   * The entries of a range as {@link KvReader.iterate} yields them, a batch at a time, as the
   * database hands them over: for bulk reads (backups), where one async step per entry would cost
   * more than reading it. Breaking out of the loop releases the iterator.
   */
  iterateBatches(range?: KvRange, options?: KvBatchOptions): AsyncIterable<readonly [string, Uint8Array][]>
  close(): Promise<void>
}

/** Options of a write. */
export interface KvWriteOptions {
  /** fsync before resolving (a write acknowledged to a user must use `sync: true`). */
  readonly sync: boolean
}

/** The database's files as of one moment ({@link KvStore.checkpoint}). */
export interface KvCheckpoint {
  /** A new directory holding the files: a database that opens to the store as it was then. */
  readonly dir: string
  /** The file names in {@link dir}. */
  readonly files: readonly string[]
  /** A snapshot of the same moment, on the live store. Close it when done. */
  readonly snapshot: KvSnapshot
  /** Removes {@link dir}. */
  remove(): Promise<void>
}

/** An ordered, durable key-value store. */
export interface KvStore extends KvReader {
  open(): Promise<void>
  close(): Promise<void>
  /**
   * The values of `keys` read on the calling thread, with no round trip through a worker thread:
   * for a few keys on a hot path (the entities a commit touches), where handing the read to a
   * thread and waiting for its callback costs more than the read. Undefined when the store cannot
   * read this way now (not yet open, or reopening after a failed write): use {@link getMany}.
   */
  getManyNow(keys: readonly string[]): (Uint8Array | undefined)[] | undefined
  /** Applies every op or none. Resolves once committed (and synced when `sync`). */
  batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void>
  /** A consistent view that later writes do not change. */
  snapshot(): KvSnapshot
  /**
   * Resolves once the store can take a snapshot: at once, or when a reopen under way (after a
   * failed write, or for a checkpoint) is over. Absent: always at once.
   */
  whenOpen?(): Promise<void>
  /** Approximate bytes on disk of the keys in [gte, lt) (0 where unknown). */
  approximateSize(gte: string, lt: string): Promise<number>
  /** The database's files as of one moment, where the store keeps files (LevelDB); absent otherwise. */
  checkpoint?(): Promise<KvCheckpoint>
}
