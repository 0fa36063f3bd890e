import { MeshsyncError } from '../crdt/index.ts'

/**
 * Error codes the local API returns, with their HTTP status. The table is the documentation:
 * README's API section lists the same codes.
 */
export const ERROR_STATUS: Readonly<Record<string, number>> = {
  INVALID_JSON: 400,
  INVALID_BODY: 400,
  INVALID_QUERY: 400,
  INVALID_NAMESPACE: 400,
  INVALID_ID: 400,
  INVALID_TEXT_NAME: 400,
  INVALID_CURSOR: 400,
  ENTITY_DELETED: 409,
  CURSOR_EXPIRED: 410,
  INVALID_ENCODING: 400,
  INVALID_RECORD: 400,
  INVALID_TEXT: 400,
  INVALID_UPDATE: 400,
  TEXT_RANGE: 400,
  INVALID_URL: 400,
  UNAUTHORIZED: 401,
  READ_ONLY_NAMESPACE: 403,
  DIAL_FAILED: 502,
  ENTITY_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  UNRESOLVED_CONFLICT: 409,
  NO_PEER: 409,
  RESYNC_TOO_LARGE: 413,
  PAYLOAD_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  UNSUPPORTED_MEDIA_TYPE: 415,
  OVERLOADED: 503,
  SHUTTING_DOWN: 503,
  STORAGE_CLOSED: 503,
  STORAGE_FULL: 507,
  STORAGE_FAILURE: 500,
  STORAGE_CORRUPT: 500,
  INTERNAL: 500,
  // Backups (daemon/backup/errors.ts)
  BACKUP_NOT_FOUND: 404,
  BACKUP_AMBIGUOUS: 400,
  BACKUP_CORRUPT: 422,
  CHAIN_INCOMPLETE: 422,
  WRONG_PASSPHRASE: 403,
  PASSPHRASE_REQUIRED: 400,
  REPOSITORY_NOT_ENCRYPTED: 400,
  REPOSITORY_LOCKED: 423,
  UNSUPPORTED_FORMAT: 422,
  TARGET_UNREACHABLE: 502,
  NO_BACKUP_TARGET: 400,
  INVALID_TARGET: 400,
  RESTORE_TARGET_NOT_EMPTY: 409,
  RESTORE_TOO_LARGE: 413,
  FILES_BACKUP_UNSUPPORTED: 501,
  FILES_BACKUP_FULL_ONLY: 400,
}

/** An entity that does not exist (or is deleted). */
export class EntityNotFoundError extends MeshsyncError {
  constructor(ns: string, id: string) {
    super('ENTITY_NOT_FOUND', `entity ${ns}/${id} not found`)
    this.name = 'EntityNotFoundError'
  }
}

/** The write queue is full or the store is closing: try again later. */
export class UnavailableError extends MeshsyncError {
  constructor(code: 'OVERLOADED' | 'SHUTTING_DOWN', message: string) {
    super(code, message)
    this.name = 'UnavailableError'
  }
}

/** Input rejected by the API layer (query strings, cursors). */
export class RequestError extends MeshsyncError {
  constructor(code: string, message: string) {
    super(code, message)
    this.name = 'RequestError'
  }
}

/**
 * A change-feed cursor older than a tombstone purge: deletions it would need are gone. The client
 * reads the namespace again from cursor 0 (like etcd's compacted revision).
 */
export class CursorExpiredError extends MeshsyncError {
  constructor(ns: string, cursor: number, floor: number) {
    super('CURSOR_EXPIRED', `cursor ${cursor} of namespace ${ns} is older than purged tombstones (up to ${floor}); read the feed again from 0`)
    this.name = 'CursorExpiredError'
  }
}

/** A local write to a namespace this node only pulls. */
export class ReadOnlyNamespaceError extends MeshsyncError {
  constructor(ns: string) {
    super('READ_ONLY_NAMESPACE', `namespace ${ns} is pull-only on this node; write to it on another node`)
    this.name = 'ReadOnlyNamespaceError'
  }
}

/** A write to an entity with unresolved conflicts in a `strict` namespace. */
export class UnresolvedConflictError extends MeshsyncError {
  constructor(ns: string, id: string) {
    super('UNRESOLVED_CONFLICT', `entity ${ns}/${id} has unresolved conflicts; resolve them first (POST .../resolve)`)
    this.name = 'UnresolvedConflictError'
  }
}
