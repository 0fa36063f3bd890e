import { MeshsyncError } from '../../crdt/index.ts'

/** A full refresh that could not run. */
export class ResyncError extends MeshsyncError {
  constructor(code: 'NO_PEER' | 'RESYNC_TOO_LARGE', message: string) {
    super(code, message)
    this.name = 'ResyncError'
  }
}
