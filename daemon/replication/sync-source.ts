import { encodeEntitySnapshot, MeshsyncError } from '../../crdt/index.ts'
import type { StoredEntity } from '../store/entity-store.ts'

/**
 * One side of a session lacks tombstone purges the other made: the session ends before anything
 * is exchanged, and the lagging side reloads those namespaces (docs/tombstone-gc.md).
 */
export class GcHorizonError extends MeshsyncError {
  constructor(message: string) {
    super('GC_HORIZON', message)
    this.name = 'GcHorizonError'
  }
}

/** An entity as stored, encoded as the entity snapshot that travels in SNAPSHOT frames. */
export function encodeStoredEntity(e: StoredEntity): Uint8Array {
  const { vv, heads, fieldHeads, updatedAt, incarnation } = e.meta
  return encodeEntitySnapshot({ ns: e.ns, id: e.id, state: e.state, vv, heads, fieldHeads, updatedAt, ...(incarnation && { incarnation }) })
}
