import { createHash } from 'node:crypto'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as Y from 'yjs'
import { CodecError, readRecord, textNames, type JsonRecord, type JsonValue, type VersionVector } from '../../crdt/index.ts'
import { compareKeys } from '../storage/key-order.ts'
import type { EntityMeta } from '../store/entity-meta.ts'

/**
 * Format of the manifests, indexes and chunks this code writes and reads (docs/backup-format.md).
 * Format 1 (a pre-release format: per-entity index, re-encoded records) is refused with
 * UNSUPPORTED_FORMAT.
 */
export const BACKUP_FORMAT = 2

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder()

export type BackupType = 'full' | 'incremental' | 'differential'

/** A stored object of a set, as the manifest names it. */
export interface ObjectRef {
  readonly name: string
  /** SHA-256 (hex) of the stored bytes. */
  readonly sha256: string
  readonly size: number
}

/** A chunk: an object holding entity records. */
export interface ChunkRef extends ObjectRef {
  readonly records: number
}

/**
 * One file of a files set: its name in the database directory and its bytes. The set's chunks,
 * in order, hold the files' bytes one after another, cut every `chunkBytes` regardless of where
 * a file ends.
 */
export interface SetFile {
  readonly name: string
  readonly size: number
  /** SHA-256 (hex) of the file's bytes. */
  readonly sha256: string
}

/** Entities per namespace at a set's snapshot. */
export type NamespaceCounts = Readonly<Record<string, { readonly live: number; readonly deleted: number }>>

/** `sets/<id>/manifest.json`: plain JSON, written last. */
export interface Manifest {
  readonly format: number
  readonly id: string
  readonly type: BackupType
  /** The set this one is a diff against: incremental: the previous set; differential: the last full. */
  readonly parent: string | null
  /** The full at the root of the chain (null for a full). */
  readonly base: string | null
  /** A full made offline from a chain (its sources, oldest first). */
  readonly synthetic?: { readonly from: readonly string[] }
  /** When the set was written. */
  readonly created: string
  /** The moment of the store snapshot it holds. */
  readonly snapshotAt: string
  readonly node: string
  /** The node's version vector at the snapshot. */
  readonly vv: VersionVector
  /** The store's change-feed position at the snapshot: the next incremental reads the feed after it. */
  readonly feedSeq: number
  /** Per namespace: live and deleted entities at the snapshot. */
  readonly namespaces: NamespaceCounts
  /** Entities at the snapshot (the set with its chain). */
  readonly entities: number
  /** Records stored in this set's chunks. */
  readonly records: number
  /** Of these, diffs against the parent (the others are whole entities). */
  readonly diffs: number
  readonly encrypted: boolean
  /** The set's index: the keys of its records, the namespaces it resets (sealed like the chunks). */
  readonly index: ObjectRef
  readonly chunks: readonly ChunkRef[]
  /**
   * How the set holds the node's data. Absent: entity records in chunks, keyed by the index (every
   * set a chain can hold). `files`: a full that holds the node's LevelDB files as of its snapshot,
   * their bytes one after another in its chunks ({@link SetFile}; the index is empty); no
   * incremental or differential is taken against it (create-files.ts, files-read.ts).
   */
  readonly method?: 'files'
  /** A files set's files, in the order of their chunks. */
  readonly files?: readonly SetFile[]
  /** Bytes of every object of the set (index and chunks). */
  readonly bytes: number
}

// ---- chunks -----------------------------------------------------------------------------

/** A whole entity: the store's meta JSON and Yjs state, as stored. */
export const RECORD_FULL = 1
/**
 * What an entity gained since the parent set: its meta JSON without `value` and `texts` (a
 * restore reads them from the merged document) and `Y.diffUpdate` of its state against its
 * state vector at the parent.
 */
export const RECORD_DIFF = 2

/** The records of one chunk, column by column (metas and states are views into the chunk). */
export interface ChunkRecords {
  readonly kinds: Uint8Array
  /** Each record's meta JSON. */
  readonly metas: readonly Uint8Array[]
  readonly states: readonly Uint8Array[]
  /** {@link DiffDigest} of the chunk's diff records (present exactly when it has some). */
  readonly diffDigest?: Uint8Array
}

/**
 * Plaintext of a chunk, column by column so that alike bytes sit together for zstd:
 *
 * ```
 * varUint format | varUint n | n kinds | n varUint meta lengths | n varUint state lengths |
 * uint8 hasDigest [32 bytes] | the diff metas | metas of whole records | states
 * ```
 *
 * A whole record's meta is stored as the node stored it (length > 0). The metas of diff records
 * (length 0) are stored apart, as their JSON with every integer set to 0 (a template: the same
 * for most entities of a namespace) and those integers as signed varints, as differences from
 * the previous diff record's when its template is the same (version vector counters, feed
 * positions and times of entities changed together are close): `varUint d | d varString
 * template | d x (uint8 mode (0 plain, 1 differences) | varUint k | k varInt)`.
 */
export function encodeChunk(records: ChunkRecords): Uint8Array {
  const n = records.metas.length
  const head = encoding.createEncoder()
  encoding.writeVarUint(head, BACKUP_FORMAT)
  encoding.writeVarUint(head, n)
  encoding.writeUint8Array(head, records.kinds)
  let body = 0
  records.metas.forEach((m, i) => {
    const whole = records.kinds[i] === RECORD_FULL
    encoding.writeVarUint(head, whole ? m.length : 0)
    if (whole) body += m.length
  })
  for (const s of records.states) {
    encoding.writeVarUint(head, s.length)
    body += s.length
  }
  encoding.writeUint8(head, records.diffDigest ? 1 : 0)
  if (records.diffDigest) encoding.writeUint8Array(head, records.diffDigest)
  const diffs = records.metas.filter((_, i) => records.kinds[i] === RECORD_DIFF)
  encodeDiffMetas(head, diffs)
  const h = encoding.toUint8Array(head)
  const out = Buffer.allocUnsafe(h.length + body)
  out.set(h, 0)
  let at = h.length
  records.metas.forEach((m, i) => {
    if (records.kinds[i] !== RECORD_FULL) return
    out.set(m, at)
    at += m.length
  })
  for (const s of records.states) {
    out.set(s, at)
    at += s.length
  }
  return out
}

/** Decodes a chunk's columns (whole records' metas and all states are not parsed); throws {@link CodecError}. */
export function decodeChunk(bytes: Uint8Array): ChunkRecords {
  try {
    const d = decoding.createDecoder(bytes)
    const format = decoding.readVarUint(d)
    if (format !== BACKUP_FORMAT) throw new CodecError(`chunk format ${format} is not supported`)
    const n = decoding.readVarUint(d)
    if (n > bytes.length) throw new CodecError('record count exceeds the chunk')
    const kinds = decoding.readUint8Array(d, n)
    for (const k of kinds) if (k !== RECORD_FULL && k !== RECORD_DIFF) throw new CodecError(`unknown record kind ${k}`)
    const metaLengths = readLengths(d, n)
    const stateLengths = readLengths(d, n)
    const flag = decoding.readUint8(d)
    if (flag > 1) throw new CodecError('bad digest flag')
    const diffDigest = flag === 1 ? decoding.readUint8Array(d, 32) : undefined
    const diffCount = kinds.reduce((c, k) => c + (k === RECORD_DIFF ? 1 : 0), 0)
    if ((diffCount > 0) !== (diffDigest !== undefined)) throw new CodecError(diffCount > 0 ? 'diff records without their digest' : 'a digest without diff records')
    const diffMetas = decodeDiffMetas(d, diffCount)
    let at = d.pos
    const total = at + metaLengths.reduce((a, b) => a + b, 0) + stateLengths.reduce((a, b) => a + b, 0)
    if (total !== bytes.length) throw new CodecError(total > bytes.length ? 'records run past the end of the chunk' : 'trailing bytes after the records')
    let nextDiff = 0
    const metas = metaLengths.map((len, i) => {
      if (kinds[i] === RECORD_DIFF) {
        if (len !== 0) throw new CodecError('a diff record with an inline meta')
        return diffMetas[nextDiff++] as Uint8Array
      }
      if (len === 0) throw new CodecError('a whole record without its meta')
      const part = bytes.subarray(at, at + len)
      at += len
      return part
    })
    const states = stateLengths.map((len) => {
      const part = bytes.subarray(at, at + len)
      at += len
      return part
    })
    return { kinds, metas, states, ...(diffDigest && { diffDigest }) }
  } catch (cause) {
    if (cause instanceof CodecError) throw cause
    throw new CodecError('chunk records do not decode', { cause })
  }
}

function encodeDiffMetas(e: encoding.Encoder, metas: readonly Uint8Array[]): void {
  const split = metas.map((m) => {
    const numbers: number[] = []
    const template = JSON.stringify(extractIntegers(JSON.parse(textDecoder.decode(m)) as unknown, numbers))
    return { template, numbers }
  })
  encoding.writeVarUint(e, split.length)
  for (const { template } of split) encoding.writeVarString(e, template)
  split.forEach(({ template, numbers }, i) => {
    const prev = i > 0 ? split[i - 1] : undefined
    const deltas = prev && prev.template === template ? numbers.map((x, j) => x - (prev.numbers[j] as number)) : undefined
    const useDeltas = deltas !== undefined && deltas.every(Number.isSafeInteger)
    encoding.writeUint8(e, useDeltas ? 1 : 0)
    encoding.writeVarUint(e, numbers.length)
    for (const x of useDeltas ? deltas : numbers) encoding.writeVarInt(e, x)
  })
}

function decodeDiffMetas(d: decoding.Decoder, count: number): Uint8Array[] {
  const templates = Array.from({ length: decoding.readVarUint(d) }, () => decoding.readVarString(d))
  if (templates.length !== count) throw new CodecError(`${templates.length} diff metas for ${count} diff records`)
  let prev: { template: string; numbers: number[] } | undefined
  return templates.map((template) => {
    const mode = decoding.readUint8(d)
    const k = decoding.readVarUint(d)
    if (mode > 1 || (mode === 1 && (!prev || prev.template !== template || prev.numbers.length !== k))) throw new CodecError('bad diff meta numbers')
    const numbers: number[] = []
    for (let j = 0; j < k; j++) {
      const x = decoding.readVarInt(d)
      numbers.push(mode === 1 ? x + ((prev as { numbers: number[] }).numbers[j] as number) : x)
    }
    if (!numbers.every(Number.isSafeInteger)) throw new CodecError('diff meta number out of range')
    let parsed: unknown
    try {
      parsed = JSON.parse(template)
    } catch (cause) {
      throw new CodecError('diff meta template is not JSON', { cause })
    }
    const at = { i: 0 }
    const value = insertIntegers(parsed, numbers, at)
    if (at.i !== numbers.length) throw new CodecError('diff meta numbers do not fit its template')
    prev = { template, numbers }
    return textEncoder.encode(JSON.stringify(value))
  })
}

/** The value with every safe integer set to 0; the integers go to `out`, in walk order. */
function extractIntegers(value: unknown, out: number[]): unknown {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return value
    out.push(value)
    return 0
  }
  if (Array.isArray(value)) return value.map((v) => extractIntegers(v, out))
  if (value !== null && typeof value === 'object') {
    // No prototype: a key "__proto__" (a user's field name) stays a key.
    const o = Object.create(null) as Record<string, unknown>
    for (const [k, v] of Object.entries(value)) o[k] = extractIntegers(v, out)
    return o
  }
  return value
}

/** The inverse of {@link extractIntegers}: every safe integer of the template takes the next number. */
function insertIntegers(value: unknown, numbers: readonly number[], at: { i: number }): unknown {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return value
    if (at.i >= numbers.length) throw new CodecError('diff meta template has more numbers than given')
    return numbers[at.i++]
  }
  if (Array.isArray(value)) return value.map((v) => insertIntegers(v, numbers, at))
  if (value !== null && typeof value === 'object') {
    const o = Object.create(null) as Record<string, unknown>
    for (const [k, v] of Object.entries(value)) o[k] = insertIntegers(v, numbers, at)
    return o
  }
  return value
}

function readLengths(d: decoding.Decoder, n: number): number[] {
  const out = new Array<number>(n)
  for (let i = 0; i < n; i++) out[i] = decoding.readVarUint(d)
  return out
}

// ---- index --------------------------------------------------------------------------------

/**
 * A set's index: the key (`ns \0 id`) of each of its records, in key order (record i of the set
 * is record i - (records of the earlier chunks) of its chunk); the namespaces reset since the
 * parent (wiped on the node: the parent's entities of them are dropped, this set's records hold
 * what the namespace has now); and entities removed since the parent.
 */
export interface SetIndex {
  readonly keys: readonly string[]
  readonly resets: readonly string[]
  readonly removed: readonly string[]
}

/** Builds a set's index as records are added (keys in key order). */
export class IndexBuilder {
  #keys = Buffer.allocUnsafe(64 * 1024)
  #used = 0
  readonly #lengths: number[] = []

  get count(): number {
    return this.#lengths.length
  }

  add(key: string): void {
    const most = key.length * 3 // UTF-8 bytes of a UTF-16 string, at most
    if (this.#used + most > this.#keys.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.#keys.length * 2, this.#used + most))
      this.#keys.copy(bigger, 0, 0, this.#used)
      this.#keys = bigger
    }
    const written = this.#keys.write(key, this.#used)
    this.#used += written
    this.#lengths.push(written)
  }

  /** Plaintext: `varUint format | varUint n | n varUint key lengths | keys | resets | removed`. */
  encode(resets: readonly string[], removed: readonly string[]): Uint8Array {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, BACKUP_FORMAT)
    encoding.writeVarUint(e, this.#lengths.length)
    for (const len of this.#lengths) encoding.writeVarUint(e, len)
    encoding.writeUint8Array(e, this.#keys.subarray(0, this.#used))
    encoding.writeVarUint(e, resets.length)
    for (const ns of resets) encoding.writeVarString(e, ns)
    encoding.writeVarUint(e, removed.length)
    for (const key of removed) encoding.writeVarString(e, key)
    return encoding.toUint8Array(e)
  }
}

/** Decodes an index, checking the keys are entity keys in strictly increasing key order; throws {@link CodecError}. */
export function decodeIndex(bytes: Uint8Array): SetIndex {
  try {
    const d = decoding.createDecoder(bytes)
    const format = decoding.readVarUint(d)
    if (format !== BACKUP_FORMAT) throw new CodecError(`index format ${format} is not supported`)
    const n = decoding.readVarUint(d)
    if (n > bytes.length) throw new CodecError('key count exceeds the index')
    const lengths = readLengths(d, n)
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const keys = new Array<string>(n)
    let at = d.pos
    for (let i = 0; i < n; i++) {
      const end = at + (lengths[i] as number)
      if (end > bytes.length) throw new CodecError('keys run past the end of the index')
      keys[i] = buf.toString('utf8', at, end)
      at = end
    }
    d.pos = at
    assertKeys(keys)
    const resets = Array.from({ length: decoding.readVarUint(d) }, () => decoding.readVarString(d))
    const removed = Array.from({ length: decoding.readVarUint(d) }, () => decoding.readVarString(d))
    assertKeys(removed)
    if (decoding.hasContent(d)) throw new CodecError('trailing bytes after the index')
    return { keys, resets, removed }
  } catch (cause) {
    if (cause instanceof CodecError) throw cause
    throw new CodecError('index does not decode', { cause })
  }
}

function assertKeys(keys: readonly string[]): void {
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string
    const sep = key.indexOf('\u0000')
    if (sep < 1 || sep === key.length - 1) throw new CodecError('not an entity key')
    if (i > 0 && compareKeys(keys[i - 1] as string, key) >= 0) throw new CodecError('keys are not in strictly increasing order')
  }
}

/** The namespace of an entity key (`ns \0 id`). */
export function namespaceOf(key: string): string {
  return key.slice(0, key.indexOf('\u0000'))
}

// ---- metas --------------------------------------------------------------------------------

/** Parses a record's meta JSON; throws {@link CodecError}. */
export function parseMeta(bytes: Uint8Array): EntityMeta {
  let meta: unknown
  try {
    meta = JSON.parse(textDecoder.decode(bytes))
  } catch (cause) {
    throw new CodecError('entity meta is not JSON', { cause })
  }
  const m = meta as Partial<EntityMeta> | null
  if (typeof m !== 'object' || m === null || typeof m.vv !== 'object' || m.vv === null || !Array.isArray(m.heads) || typeof m.deleted !== 'boolean') {
    throw new CodecError('not an entity meta')
  }
  return m as EntityMeta
}

/** A diff record's meta: the entity's meta without what its document holds (`value`, `texts`). */
export function diffMeta(meta: EntityMeta): Uint8Array {
  const { value: _value, texts: _texts, ...rest } = meta
  return textEncoder.encode(JSON.stringify(rest))
}

/** The whole meta of an entity rebuilt from diffs: the diff's meta with the record and texts of its document. */
export function completeMeta(partial: EntityMeta, doc: Y.Doc): EntityMeta {
  return { ...partial, value: readRecord(doc), texts: textNames(doc) }
}

// ---- digests ------------------------------------------------------------------------------

/** What an entity's digest covers. */
export interface DigestInput {
  readonly vv: VersionVector
  readonly deleted: boolean
  /** Yjs state vector (client -> clock). */
  readonly sv: ReadonlyMap<number, number>
  readonly value: JsonRecord
  /** Text roots by name (empty ones are left out). */
  readonly texts: Readonly<Record<string, string>>
}

/**
 * A digest of what an entity is: its version vector, deleted flag, Yjs state vector, record and
 * non-empty texts, in canonical form (sorted keys and clients), so the same state gives the same
 * digest however its updates were encoded or merged.
 */
export function entityDigest(input: DigestInput): Uint8Array {
  const texts: Record<string, string> = {}
  for (const [name, text] of Object.entries(input.texts)) if (text !== '') texts[name] = text
  const canonical = JSON.stringify(
    sortKeys({
      vv: input.vv as Record<string, number>,
      deleted: input.deleted,
      sv: [...input.sv].sort((a, b) => a[0] - b[0]).map(([client, clock]) => `${client}:${clock}`),
      value: input.value,
      texts,
    }),
  )
  return new Uint8Array(createHash('sha256').update(canonical).digest())
}

/** {@link entityDigest} of an entity loaded in a Y.Doc. */
export function docDigest(vv: VersionVector, deleted: boolean, doc: Y.Doc): Uint8Array {
  const texts: Record<string, string> = {}
  for (const name of textNames(doc)) texts[name] = doc.getText(name).toString()
  return entityDigest({ vv, deleted, sv: Y.decodeStateVector(Y.encodeStateVector(doc)), value: readRecord(doc), texts })
}

/**
 * The digest of a chunk's diff records: SHA-256 over `key length : key` and the {@link entityDigest}
 * of the entity's state at the set, for each diff record in order. A restore rebuilds each entity
 * from its chain and must arrive at the same.
 */
export class DiffDigest {
  readonly #hash = createHash('sha256')
  #count = 0

  get count(): number {
    return this.#count
  }

  add(key: string, digest: Uint8Array): void {
    this.#hash.update(`${key.length}:${key}`).update(digest)
    this.#count++
  }

  digest(): Uint8Array {
    return new Uint8Array(this.#hash.digest())
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

function sortKeys(value: JsonValue | Record<string, unknown> | unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key])
    return out
  }
  return value
}
