import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { CodecError } from './errors.ts'
import { isValidNodeId } from './names.ts'

/**
 * A version vector: node id -> counter. Absent entries are zero; zero entries are never stored,
 * so two vectors describing the same history are deep-equal and encode to the same bytes.
 * Values are immutable: every operation returns a new object.
 */
export type VersionVector = Readonly<Record<string, number>>

/** Result of comparing two version vectors. */
export type VersionOrder = 'equal' | 'before' | 'after' | 'concurrent'

/** Largest number of entries a decoded vector may have (bounded input). */
export const MAX_VECTOR_ENTRIES = 4096

/** The empty vector (no history). */
export function emptyVector(): VersionVector {
  return Object.freeze({})
}

/** Counter of `node` in `vv` (0 when absent). */
export function counterOf(vv: VersionVector, node: string): number {
  return Object.hasOwn(vv, node) ? (vv[node] as number) : 0
}

/** `vv` with `node`'s counter raised to `counter` (never lowered). */
export function withCounter(vv: VersionVector, node: string, counter: number): VersionVector {
  if (counter <= counterOf(vv, node)) return vv
  return canonical({ ...vv, [node]: counter })
}

/** `vv` with `node`'s counter incremented by one. */
export function increment(vv: VersionVector, node: string): VersionVector {
  return canonical({ ...vv, [node]: counterOf(vv, node) + 1 })
}

/** Pointwise maximum (least upper bound) of two vectors. */
export function merge(a: VersionVector, b: VersionVector): VersionVector {
  const out: Record<string, number> = { ...a }
  for (const [node, counter] of Object.entries(b)) {
    // counterOf, not `out[node] ?? 0`: node ids such as 'constructor' name Object.prototype members.
    if (counter > counterOf(out, node)) out[node] = counter
  }
  return canonical(out)
}

/** True when `a` has seen everything `b` has (a >= b pointwise). */
export function dominates(a: VersionVector, b: VersionVector): boolean {
  for (const [node, counter] of Object.entries(b)) {
    if (counterOf(a, node) < counter) return false
  }
  return true
}

/** Causal order of `a` relative to `b`. */
export function compare(a: VersionVector, b: VersionVector): VersionOrder {
  const aGeB = dominates(a, b)
  const bGeA = dominates(b, a)
  if (aGeB && bGeA) return 'equal'
  if (aGeB) return 'after'
  if (bGeA) return 'before'
  return 'concurrent'
}

/** True when `vv` includes the event `(origin, seq)`. */
export function includesDot(vv: VersionVector, origin: string, seq: number): boolean {
  return counterOf(vv, origin) >= seq
}

/** Sum of all counters: a cheap measure of how much history a vector describes. */
export function totalCount(vv: VersionVector): number {
  let n = 0
  for (const counter of Object.values(vv)) n += counter
  return n
}

/**
 * A frozen copy with keys inserted in sorted order and zero entries dropped. (JS still enumerates
 * integer-like keys first; the encoding sorts explicitly.)
 */
export function canonical(vv: Record<string, number>): VersionVector {
  const out: Record<string, number> = {}
  for (const node of Object.keys(vv).sort()) {
    const counter = vv[node] as number
    if (counter > 0) out[node] = counter
  }
  return Object.freeze(out)
}

/** Writes the canonical form of `vv` (entry count, then sorted `nodeId, counter` pairs). */
export function writeVersionVector(encoder: encoding.Encoder, vv: VersionVector): void {
  // Sorted here, not by key order: objects enumerate integer-like keys ('1', '10') first.
  const nodes = Object.keys(vv)
    .filter((node) => (vv[node] as number) > 0)
    .sort()
  encoding.writeVarUint(encoder, nodes.length)
  for (const node of nodes) {
    encoding.writeVarString(encoder, node)
    encoding.writeVarUint(encoder, vv[node] as number)
  }
}

/**
 * Reads a vector written by {@link writeVersionVector}. Throws {@link CodecError} on anything that
 * is not canonical: bad node ids, zero or unsafe counters, unsorted or duplicate entries.
 */
export function readVersionVector(decoder: decoding.Decoder): VersionVector {
  const n = readBoundedUint(decoder, MAX_VECTOR_ENTRIES, 'version vector size')
  const out: Record<string, number> = {}
  let previous = ''
  for (let i = 0; i < n; i++) {
    const node = readString(decoder, 'version vector node id')
    if (!isValidNodeId(node)) throw new CodecError('version vector has an invalid node id')
    if (i > 0 && node <= previous) throw new CodecError('version vector entries are not sorted and unique')
    const counter = readBoundedUint(decoder, Number.MAX_SAFE_INTEGER, 'version vector counter')
    if (counter === 0) throw new CodecError('version vector has a zero counter')
    out[node] = counter
    previous = node
  }
  return Object.freeze(out)
}

/** Canonical binary encoding of a vector. */
export function encodeVersionVector(vv: VersionVector): Uint8Array {
  const encoder = encoding.createEncoder()
  writeVersionVector(encoder, vv)
  return encoding.toUint8Array(encoder)
}

/** Decodes {@link encodeVersionVector} output; throws {@link CodecError} on any defect. */
export function decodeVersionVector(bytes: Uint8Array): VersionVector {
  const decoder = decoding.createDecoder(bytes)
  const vv = readVersionVector(decoder)
  if (decoding.hasContent(decoder)) throw new CodecError('trailing bytes after version vector')
  return vv
}

/** Checks a JSON-ish value is a valid vector (API input, config); returns it canonical. */
export function parseVersionVector(value: unknown): VersionVector {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CodecError('version vector must be an object')
  }
  const out: Record<string, number> = {}
  for (const [node, counter] of Object.entries(value)) {
    if (!isValidNodeId(node)) throw new CodecError('version vector has an invalid node id')
    if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter < 0) {
      throw new CodecError('version vector counters must be non-negative safe integers')
    }
    out[node] = counter
  }
  return canonical(out)
}

/** lib0 readers throw plain Errors on truncated input; these wrap them into CodecError. */
export function readBoundedUint(decoder: decoding.Decoder, max: number, what: string): number {
  let n: number
  try {
    n = decoding.readVarUint(decoder)
  } catch (cause) {
    throw new CodecError(`truncated ${what}`, { cause })
  }
  if (!Number.isSafeInteger(n) || n > max) throw new CodecError(`${what} out of range`)
  return n
}

/** Reads a length-prefixed UTF-8 string, wrapping lib0's errors. */
export function readString(decoder: decoding.Decoder, what: string, maxBytes = 1024): string {
  const len = peekLength(decoder, what)
  if (len > maxBytes) throw new CodecError(`${what} is too long`)
  try {
    return decoding.readVarString(decoder)
  } catch (cause) {
    throw new CodecError(`truncated ${what}`, { cause })
  }
}

/** Reads a length-prefixed byte array of at most `maxBytes`, wrapping lib0's errors. */
export function readBytes(decoder: decoding.Decoder, what: string, maxBytes: number): Uint8Array {
  const len = readBoundedUint(decoder, maxBytes, `${what} length`)
  if (decoder.arr.length - decoder.pos < len) throw new CodecError(`truncated ${what}`)
  return decoding.readUint8Array(decoder, len)
}

function peekLength(decoder: decoding.Decoder, what: string): number {
  const pos = decoder.pos
  const len = readBoundedUint(decoder, Number.MAX_SAFE_INTEGER, `${what} length`)
  decoder.pos = pos
  if (decoder.arr.length - decoder.pos < len) throw new CodecError(`truncated ${what}`)
  return len
}
