/**
 * Storage: the narrow ordered key-value interface the daemon persists through, its LevelDB and
 * in-memory implementations, the key order they share, and their error.
 */
export type { KvBatchOp, KvBatchOptions, KvCheckpoint, KvRange, KvReader, KvSnapshot, KvStore, KvWriteOptions } from './kv-store.ts'
export { StorageError } from './errors.ts'
export { LEVELDB_FILE_NAME, LevelKvStore } from './level-kv-store.ts'
export type { LevelKvStoreOptions } from './level-kv-store.ts'
export { MemoryKvStore } from './memory-kv-store.ts'
export { compareKeys, toStoredKey } from './key-order.ts'
