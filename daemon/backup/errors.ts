import { MeshsyncError } from '../../crdt/index.ts'
import type { ErrorCodes } from '../errors.ts'

/**
 * Codes of backup errors (each also in ERROR_CODES, daemon/errors.ts, which gives their HTTP
 * status, and in docs/api.md):
 *
 * - `BACKUP_NOT_FOUND`: no set with that id (or prefix) in the repository.
 * - `NO_BACKUP_BEFORE`: a read at a time before every set of the repository.
 * - `BACKUP_AMBIGUOUS`: an id prefix that matches several sets.
 * - `BACKUP_CORRUPT`: a chunk, index or manifest that fails its SHA-256, does not decrypt,
 *   decompress or decode; `set` and `object` name it.
 * - `CHAIN_INCOMPLETE`: a set whose parent or base is missing from the repository.
 * - `WRONG_PASSPHRASE` / `PASSPHRASE_REQUIRED` / `REPOSITORY_NOT_ENCRYPTED`: encryption.
 * - `REPOSITORY_LOCKED`: another process holds the repository lock.
 * - `UNSUPPORTED_FORMAT`: a repository config or manifest of a newer (or unknown) format.
 * - `TARGET_UNREACHABLE`: the directory or bucket cannot be read or written.
 * - `NO_BACKUP_TARGET` / `INVALID_TARGET`: no repository given or configured / not one.
 * - `RESTORE_TARGET_NOT_EMPTY`: restore into a data dir that already holds data.
 * - `RESTORE_TOO_LARGE`: a live restore needs more writes in its one atomic batch than the store
 *   takes at once (`store.maxQueuedOps`); nothing was written.
 * - `FILES_BACKUP_UNSUPPORTED`: a files backup of a store that keeps no database files (the
 *   memory store of tests).
 * - `FILES_BACKUP_FULL_ONLY`: a files backup asked for as an incremental or differential.
 * - `BACKUP_BUSY`: another backup operation runs on this node (answered at once, with a retry
 *   hint; operations.ts).
 * - `BACKUP_ABORTED`: an operation stopped by its deadline or by the daemon stopping.
 */
export type BackupErrorCode = ErrorCodes<
  | 'BACKUP_NOT_FOUND'
  | 'NO_BACKUP_BEFORE'
  | 'BACKUP_AMBIGUOUS'
  | 'BACKUP_CORRUPT'
  | 'CHAIN_INCOMPLETE'
  | 'WRONG_PASSPHRASE'
  | 'PASSPHRASE_REQUIRED'
  | 'REPOSITORY_NOT_ENCRYPTED'
  | 'REPOSITORY_LOCKED'
  | 'UNSUPPORTED_FORMAT'
  | 'TARGET_UNREACHABLE'
  | 'NO_BACKUP_TARGET'
  | 'INVALID_TARGET'
  | 'RESTORE_TARGET_NOT_EMPTY'
  | 'RESTORE_TOO_LARGE'
  | 'FILES_BACKUP_UNSUPPORTED'
  | 'FILES_BACKUP_FULL_ONLY'
  | 'BACKUP_BUSY'
  | 'BACKUP_ABORTED'
>

/** A backup operation refused or failed; nothing in the repository or the store was changed. */
export class BackupError extends MeshsyncError {
  /** The set concerned, when there is one. */
  readonly set: string | undefined
  /** The object (chunk, index, manifest) concerned, when there is one. */
  readonly object: string | undefined

  constructor(code: BackupErrorCode, message: string, options: { cause?: unknown; set?: string; object?: string } = {}) {
    super(code, message, options.cause !== undefined ? { cause: options.cause } : undefined)
    this.name = 'BackupError'
    this.set = options.set
    this.object = options.object
  }
}

/** The chunk or object that failed, in one error naming the set and the object. */
export function corrupt(set: string, object: string, why: string, cause?: unknown): BackupError {
  return new BackupError('BACKUP_CORRUPT', `backup ${set}: ${object} is corrupt (${why})`, { set, object, ...(cause !== undefined && { cause }) })
}
