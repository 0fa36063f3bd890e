import { ValidationError } from './errors.ts'

const NAMESPACE_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/
// Printable: no C0/C1 control characters, no DEL; `/` is the one printable character refused.
// eslint-disable-next-line no-control-regex
const ID_FORBIDDEN_RE = /[\u0000-\u001f\u007f-\u009f/]/
const NODE_ID_RE = /^[0-9a-z]{1,64}$/
// A UTF-16 surrogate without its partner: not a character, and UTF-8 turns it into U+FFFD.
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/**
 * True when `s` is well-formed UTF-16 (no lone surrogates), i.e. it survives UTF-8 encoding, and
 * so the codecs and Yjs, unchanged.
 */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE_RE.test(s)
}

const utf8 = new TextEncoder()

/** Length of `s` in UTF-8 bytes (lone surrogates count as U+FFFD, as the encoders write them). */
export function utf8ByteLength(s: string): number {
  return utf8.encode(s).length
}

/** Namespace rule of docs/architecture.md (Data model): `[a-z0-9][a-z0-9._-]{0,63}`. */
export function isValidNamespace(ns: unknown): ns is string {
  return typeof ns === 'string' && NAMESPACE_RE.test(ns)
}

/**
 * Entity id rule of docs/architecture.md (Data model): 1..256 printable characters, no `/`. A lone surrogate is not a
 * character (and would come out of the codec as U+FFFD, a different id), so it is refused.
 */
export function isValidEntityId(id: unknown): id is string {
  return typeof id === 'string' && id.length >= 1 && id.length <= 256 && !ID_FORBIDDEN_RE.test(id) && isWellFormed(id)
}

/** Node ids are lower-case base-36 strings of at most 64 characters. */
export function isValidNodeId(nodeId: unknown): nodeId is string {
  return typeof nodeId === 'string' && NODE_ID_RE.test(nodeId)
}

/** Throws `INVALID_NAMESPACE` unless `ns` is a valid namespace. */
export function assertNamespace(ns: unknown): asserts ns is string {
  if (!isValidNamespace(ns)) {
    throw new ValidationError('INVALID_NAMESPACE', 'namespace must match [a-z0-9][a-z0-9._-]{0,63}')
  }
}

/** Throws `INVALID_ID` unless `id` is a valid entity id. */
export function assertEntityId(id: unknown): asserts id is string {
  if (!isValidEntityId(id)) {
    throw new ValidationError('INVALID_ID', 'entity id must be 1..256 printable characters without "/"')
  }
}

/** Text field names follow the namespace rule (they become Y.Text root names). */
export function assertTextName(name: unknown): asserts name is string {
  if (!isValidNamespace(name)) {
    throw new ValidationError('INVALID_TEXT_NAME', 'text name must match [a-z0-9][a-z0-9._-]{0,63}')
  }
}
