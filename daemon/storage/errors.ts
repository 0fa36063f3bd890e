import { MeshsyncError } from '../../crdt/index.ts'

/** A storage failure (open, read, write, fsync). Never swallowed: it fails the request that hit it. */
export class StorageError extends MeshsyncError {
  constructor(code: 'STORAGE_FAILURE' | 'STORAGE_CLOSED' | 'STORAGE_CORRUPT', message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'StorageError'
  }
}
