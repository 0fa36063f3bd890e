import { MeshsyncError, type CrdtErrorCode } from '../crdt/index.ts'
import type { DialFailureCode } from '../transport/dial-diagnosis.ts'

/**
 * Every error code meshsync reports, with the HTTP status the local API answers it with and what
 * it means (docs/api.md, Errors, lists the same table; a test checks the two agree). `status:
 * null` marks a code that is never an API response: the CLI or the daemon's start reports it, or
 * a peer session ends with it. A code reaching the API's error handler that is not in this table
 * with a status is a bug: the handler logs it and answers 500 `INTERNAL`.
 */
export const ERROR_CODES = {
  // Requests
  INVALID_JSON: { status: 400, meaning: 'the body is not JSON' },
  INVALID_BODY: { status: 400, meaning: "the body does not match the route's schema (wrong types, missing or unknown fields)" },
  INVALID_QUERY: { status: 400, meaning: 'bad query parameters (an unknown one, or `limit` out of range), or a query or index definition that is not valid (the message starts with the part at fault, e.g. `where.status.$gte`)' },
  INVALID_URL: { status: 400, meaning: 'a path that is not valid percent-encoding' },
  URI_TOO_LONG: { status: 414, meaning: 'a path segment longer than 1024 characters' },
  PAYLOAD_TOO_LARGE: { status: 413, meaning: 'a body over `api.bodyLimit`' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'a body that is not `application/json`' },
  BAD_REQUEST: { status: 400, meaning: 'a request the HTTP layer refused for another reason (the status is the one it gave, a 4xx)' },
  UNAUTHORIZED: { status: 401, meaning: 'missing or wrong bearer token (TCP only)' },
  ROUTE_NOT_FOUND: { status: 404, meaning: 'no such route' },
  METHOD_NOT_ALLOWED: { status: 405, meaning: 'a known path with a method it does not take (the `Allow` header lists those it takes)' },
  // Data model (crdt/)
  INVALID_NAMESPACE: { status: 400, meaning: 'a namespace outside the allowed form' },
  INVALID_ID: { status: 400, meaning: 'an entity id outside the allowed form' },
  INVALID_TEXT_NAME: { status: 400, meaning: 'a text name outside the allowed form' },
  INVALID_RECORD: { status: 400, meaning: 'a record that breaks the rules (field names, strings that are not well-formed Unicode, too deep, a number that is not finite)' },
  INVALID_TEXT: { status: 400, meaning: 'inserted text that is not well-formed Unicode' },
  INVALID_UPDATE: { status: 400, meaning: 'bytes that are not a Yjs update, or an update that depends on changes this node does not have' },
  INVALID_ENCODING: { status: 400, meaning: 'bytes that do not decode to a valid value' },
  TEXT_RANGE: { status: 400, meaning: 'a splice outside the text; nothing of the request is applied' },
  ENTITY_DELETED: { status: 409, meaning: 'a Yjs update to an entity deleted longer ago than `gc.tombstoneGraceMs`: recreate it with PUT' },
  STORE_NOT_EMPTY: { status: null, meaning: 'a bulk load into a store that already holds entities (a restore reports it as BACKUP_CORRUPT)' },
  // Entities and the change feed
  INVALID_CURSOR: { status: 400, meaning: 'a change-feed or history cursor this node did not issue' },
  CURSOR_EXPIRED: { status: 410, meaning: 'a change-feed cursor older than a tombstone purge (it could miss deletions): read again from cursor 0' },
  ENTITY_NOT_FOUND: { status: 404, meaning: 'no such entity (or it is deleted)' },
  SLOW_CONSUMER: { status: null, meaning: 'a live query stream the node ended (its `end` event) because the subscriber read too slowly: more than `query.liveBufferBytes` of events waited; resume with `Last-Event-ID`' },
  QUERY_NEEDS_INDEX: { status: 400, meaning: 'a query that would examine more than `query.maxScan` entities: add an index that serves it, or narrow it' },
  INDEX_NOT_FOUND: { status: 404, meaning: 'no index of that name in the namespace' },
  INDEX_CONFLICT: { status: 409, meaning: 'an index of that name exists with other fields, or is declared in the config (change it there)' },
  READ_ONLY_NAMESPACE: { status: 403, meaning: 'a local write to a pull-only namespace' },
  UNRESOLVED_CONFLICT: { status: 409, meaning: 'a write to a conflicted entity in a `strict` namespace' },
  // Peers and replication
  DIAL_FAILED: { status: 502, meaning: '`POST /v1/peers` could not connect, for a cause none of the codes below names (the message says which)' },
  PEER_UNREACHABLE: { status: 502, meaning: '`POST /v1/peers`: nothing accepts TCP connections at the address (connection refused, no route, or no connection within the timeout)' },
  PEER_NO_ANSWER: { status: 504, meaning: '`POST /v1/peers`: something accepted the connection and sent nothing within the handshake timeout (a stopped or overloaded node)' },
  NOT_MESHSYNC: { status: 502, meaning: "`POST /v1/peers`: what answers at the address is not meshsync's p2p port (another service, or the API port); the message quotes what it said" },
  PEER_KEY_MISMATCH: { status: 502, meaning: '`POST /v1/peers`: the node at the address holds another cluster key' },
  PEER_REFUSED: { status: 502, meaning: "`POST /v1/peers`: the peer closed the connection (this node is not in its `p2p.allowPeers` or is banned there, or it is at its connection limit)" },
  PEER_NOT_ALLOWED: { status: 409, meaning: "`POST /v1/peers`: this node's `p2p.allowPeers` does not list the peer (or it is banned for invalid data)" },
  WRONG_PEER_ID: { status: 502, meaning: '`POST /v1/peers`: the node at the address has another peer id than the address names' },
  NO_PEER: { status: 409, meaning: 'resync without a connected peer (or the named one is not connected)' },
  RESYNC_TOO_LARGE: { status: 413, meaning: 'the namespace a resync fetches is larger than the most it takes' },
  SYNC_PROTOCOL: { status: 400, meaning: 'the peer broke the sync protocol (a resync ends with it)' },
  GC_HORIZON: { status: null, meaning: 'a sync session refused: one side lacks tombstone purges of the other, and reloads those namespaces' },
  // The daemon
  OVERLOADED: { status: 503, meaning: 'too many writes waiting: retry' },
  SHUTTING_DOWN: { status: 503, meaning: 'the daemon is stopping: retry' },
  STORAGE_CLOSED: { status: 503, meaning: 'the store is closed (the daemon is stopping)' },
  STORAGE_FULL: { status: 507, meaning: 'the disk holding the data dir is full; nothing of the write was committed, and writes resume once space is freed' },
  STORAGE_FAILURE: { status: 500, meaning: 'the disk refused a read or write (nothing was acknowledged)' },
  STORAGE_CORRUPT: { status: 500, meaning: 'the data dir is damaged (LevelDB reports corruption, or a stored Yjs update is missing)' },
  INTERNAL: { status: 500, meaning: 'an unexpected error (logged by the daemon)' },
  // Backups (daemon/backup/errors.ts)
  BACKUP_NOT_FOUND: { status: 404, meaning: 'no backup with that id (or prefix) in the repository, or no repository there' },
  NO_BACKUP_BEFORE: { status: 404, meaning: 'a read `at` a time before the oldest backup in the repository (none was taken at or before it)' },
  BACKUP_AMBIGUOUS: { status: 400, meaning: 'an id prefix that matches several backups' },
  BACKUP_CORRUPT: { status: 422, meaning: 'a chunk, index or manifest fails its SHA-256, size, decryption or decoding (the message names the backup and the object)' },
  CHAIN_INCOMPLETE: { status: 422, meaning: 'a backup whose parent or base is missing from the repository' },
  WRONG_PASSPHRASE: { status: 403, meaning: 'the passphrase does not open the repository' },
  PASSPHRASE_REQUIRED: { status: 400, meaning: 'an encrypted repository without a passphrase (or an empty or unreadable passphrase file)' },
  REPOSITORY_NOT_ENCRYPTED: { status: 400, meaning: 'a passphrase for a repository that is not encrypted' },
  REPOSITORY_LOCKED: { status: 423, meaning: 'another process holds the repository lock' },
  UNSUPPORTED_FORMAT: { status: 422, meaning: 'a repository or manifest written by a newer meshsync' },
  TARGET_UNREACHABLE: { status: 502, meaning: 'the backup directory or bucket cannot be read or written' },
  NO_BACKUP_TARGET: { status: 400, meaning: 'no `target` given or configured (or backups are not available on this node)' },
  INVALID_TARGET: { status: 400, meaning: 'a target that is not an absolute path or `s3://` URL, a path that is not a directory or where nothing can be written (checked before the operation starts; also: an empty retention policy)' },
  RESTORE_TARGET_NOT_EMPTY: { status: 409, meaning: '`into` names a directory that already holds files' },
  RESTORE_TOO_LARGE: { status: 413, meaning: 'a live restore needs more writes in its one atomic batch than `store.maxQueuedOps`; nothing was written' },
  FILES_BACKUP_UNSUPPORTED: { status: 501, meaning: 'a files backup of a store that keeps no database files (the in-memory store of tests)' },
  FILES_BACKUP_FULL_ONLY: { status: 400, meaning: 'a files backup asked for as an incremental or differential' },
  BACKUP_BUSY: { status: 423, meaning: 'another backup, restore, verify, synthesize or prune runs on this node; answered at once with `Retry-After` (seconds)' },
  BACKUP_ABORTED: { status: 503, meaning: 'the operation ran past its deadline or the daemon is stopping; nothing of it was kept' },
  // The CLI and the daemon's start (never an API response)
  INVALID_ARGUMENT: { status: null, meaning: 'a command line the CLI cannot run: an unknown command or option, a missing argument, or a value that is not a valid number or port' },
  CONFIG_INVALID: { status: null, meaning: 'invalid configuration (file or flags), or an unreadable or empty `backup.passphraseFile`' },
  PORT_IN_USE: { status: null, meaning: 'the API port or a p2p listen port is taken by another process' },
  ALREADY_RUNNING: { status: null, meaning: 'a daemon is already running on the data dir' },
  DATA_DIR_UNUSABLE: { status: null, meaning: 'the data dir cannot be created or written (a path where no directory can be made, no permission, a read-only file system)' },
  DAEMON_NOT_RUNNING: { status: null, meaning: 'no daemon is listening on the data dir (the CLI)' },
  HTTP_ERROR: { status: null, meaning: 'the CLI got an error status without an error body' },
  // A new data dir (the daemon's start, or a restore `into` one, which copies this node's cluster key)
  CLUSTER_KEY_INVALID: { status: 400, meaning: 'the cluster key file is not a libp2p pre-shared key file' },
  CLUSTER_KEY_UNREADABLE: { status: 400, meaning: 'the cluster key file cannot be read' },
  CLUSTER_KEY_MISMATCH: { status: 400, meaning: 'the data dir already holds a different cluster key' },
  CLUSTER_KEY_REQUIRED: { status: null, meaning: '`restore --into` without `--cluster-key FILE` or `--new-cluster` (the CLI never makes a new cluster unasked)' },
} as const satisfies Record<string, { readonly status: number | null; readonly meaning: string }>

/** A code of {@link ERROR_CODES}. */
export type ErrorCode = keyof typeof ERROR_CODES

/** The codes the local API answers with (those with an HTTP status). */
export type ApiErrorCode = { [C in ErrorCode]: (typeof ERROR_CODES)[C]['status'] extends number ? C : never }[ErrorCode]

/** A union of codes, each of which must be in {@link ERROR_CODES} (else it does not compile). */
export type ErrorCodes<C extends ErrorCode> = C

/** The codes crdt/ throws (it cannot import this table): compile-time proof they are in it. */
export type CrdtErrorCodes = ErrorCodes<CrdtErrorCode>

/** The codes a failed dial has (transport/dial-diagnosis.ts): compile-time proof they are in it. */
export type DialErrorCodes = ErrorCodes<DialFailureCode>

/** Whether `code` is a code of {@link ERROR_CODES}. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}

/** Whether `code` is a code the local API answers with (one with an HTTP status). */
export function isApiErrorCode(code: string): code is ApiErrorCode {
  return isErrorCode(code) && ERROR_CODES[code].status !== null
}

/** An error of the daemon or the CLI with one of the table's codes (start, arguments, files). */
export class DaemonError extends MeshsyncError {
  declare readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'DaemonError'
  }
}

/** An entity that does not exist (or is deleted). */
export class EntityNotFoundError extends MeshsyncError {
  /** `where`: where it was looked for, when not on this node (e.g. `in backup X`). */
  constructor(ns: string, id: string, where?: string) {
    super('ENTITY_NOT_FOUND', `entity ${ns}/${id} not found${where !== undefined ? ` ${where}` : ''}`)
    this.name = 'EntityNotFoundError'
  }
}

/** The write queue is full or the store is closing: try again later. */
export class UnavailableError extends MeshsyncError {
  constructor(code: ErrorCodes<'OVERLOADED' | 'SHUTTING_DOWN'>, message: string) {
    super(code, message)
    this.name = 'UnavailableError'
  }
}

/** Input rejected by the API layer (query strings, bodies, cursors) or a dial it could not make. */
export class RequestError extends MeshsyncError {
  constructor(code: ErrorCodes<'INVALID_QUERY' | 'INVALID_BODY' | 'INVALID_CURSOR' | 'DIAL_FAILED'>, message: string) {
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

/** A query that would examine more entities than `query.maxScan` (docs/queries.md). */
export class QueryNeedsIndexError extends MeshsyncError {
  constructor(ns: string, examined: number, maxScan: number) {
    super('QUERY_NEEDS_INDEX', `the query would examine more than ${maxScan} entities of ${ns} (query.maxScan; at least ${examined}): add an index that serves it (docs/queries.md), or narrow it`)
    this.name = 'QueryNeedsIndexError'
  }
}

/** An index that does not exist, or one that cannot be created or dropped as asked. */
export class IndexError extends MeshsyncError {
  constructor(code: ErrorCodes<'INDEX_NOT_FOUND' | 'INDEX_CONFLICT'>, message: string) {
    super(code, message)
    this.name = 'IndexError'
  }
}
