import { MeshsyncError } from '../../crdt/index.ts'
import type { ErrorCodes } from '../errors.ts'

export type StorageErrorCode = ErrorCodes<'STORAGE_FAILURE' | 'STORAGE_CLOSED' | 'STORAGE_CORRUPT' | 'STORAGE_FULL'>

/**
 * A storage failure (open, read, write, fsync). Never swallowed: it fails the request that hit it.
 * `STORAGE_FULL`: the disk holding the database has no space left (ENOSPC, EDQUOT); nothing of
 * the write was committed, and writes resume once space is freed.
 */
export class StorageError extends MeshsyncError {
  declare readonly code: StorageErrorCode

  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'StorageError'
  }
}
