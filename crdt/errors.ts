/**
 * Codes of the errors crdt/ throws (and daemon/ throws through {@link ValidationError}). crdt/
 * knows nothing of HTTP: daemon/errors.ts holds every code with its status and meaning, and
 * checks at compile time that each of these is in it (docs/api.md, Errors).
 */
export type ValidationErrorCode =
  | 'INVALID_NAMESPACE'
  | 'INVALID_ID'
  | 'INVALID_TEXT_NAME'
  | 'INVALID_RECORD'
  | 'INVALID_TEXT'
  | 'INVALID_UPDATE'
  | 'TEXT_RANGE'
  /** A Yjs update to an entity deleted past its grace period (daemon/store). */
  | 'ENTITY_DELETED'
  /** A bulk load into a store that already holds entities (daemon/store). */
  | 'STORE_NOT_EMPTY'

/** Every code crdt/ itself defines. */
export type CrdtErrorCode = ValidationErrorCode | 'INVALID_ENCODING'

/**
 * Base class of every error meshsync throws on purpose. `code` is stable and documented;
 * tests and API clients match on it, never on `message`. Not constructed directly: each subclass
 * types the codes it takes, so an unknown code does not compile.
 */
export class MeshsyncError extends Error {
  readonly code: string

  protected constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'MeshsyncError'
  }
}

/** Input that breaks the data model's rules (names, record shapes, text positions). */
export class ValidationError extends MeshsyncError {
  constructor(code: ValidationErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'ValidationError'
  }
}

/** Bytes that do not decode to a valid value. `code` is always `INVALID_ENCODING`. */
export class CodecError extends MeshsyncError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ENCODING', message, options)
    this.name = 'CodecError'
  }
}
