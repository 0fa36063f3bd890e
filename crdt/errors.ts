/**
 * Base class of every error meshsync throws on purpose. `code` is stable and documented;
 * tests and API clients match on it, never on `message`.
 */
export class MeshsyncError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'MeshsyncError'
  }
}

/** Input that breaks the data model's rules (names, record shapes, text positions). */
export class ValidationError extends MeshsyncError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
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
