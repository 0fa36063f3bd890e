import { createHash } from 'node:crypto'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as Y from 'yjs'
import {
  CodecError,
  decodeEntitySnapshot,
  encodeEntitySnapshot,
  readRecord,
  readVersionVector,
  textNames,
  writeVersionVector,
  type EntitySnapshot,
  type JsonRecord,
  type JsonValue,
  type VersionVector,
} from '../../crdt/index.ts'

/** Format of manifests, indexes and chunks this code writes; it reads this one and older. */
export const BACKUP_FORMAT = 1

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

/** `sets/<id>/manifest.json`: the only mutable-looking thing of a set, written last. */
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
  /** Per namespace: live and deleted entities at the snapshot. */
  readonly namespaces: Readonly<Record<string, { readonly live: number; readonly deleted: number }>>
  readonly entities: number
  /** Records stored in this set's chunks (full states, diffs, removals). */
  readonly records: number
  /** SHA-256 over every entity's state digest: equal digests, equal restored state. */
  readonly stateDigest: string
  readonly encrypted: boolean
  /** The per-entity index (encrypted like the chunks). */
  readonly index: ObjectRef
  readonly chunks: readonly ChunkRef[]
  /** Bytes of every object of the set (index and chunks). */
  readonly bytes: number
}

// ---- records (chunk contents) -------------------------------------------------------------

export const RECORD_FULL = 1
export const RECORD_DIFF = 2
export const RECORD_REMOVED = 3

/**
 * One entry of a chunk: an entity's full state, its diff against the base set's state vector
 * (with its full causal metadata), or its removal (it no longer exists on the node).
 */
export type BackupRecord =
  | { readonly kind: typeof RECORD_FULL | typeof RECORD_DIFF; readonly snapshot: EntitySnapshot }
  | { readonly kind: typeof RECORD_REMOVED; readonly ns: string; readonly id: string }

export function encodeRecords(records: readonly BackupRecord[]): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, BACKUP_FORMAT)
  encoding.writeVarUint(e, records.length)
  for (const r of records) {
    encoding.writeUint8(e, r.kind)
    if (r.kind === RECORD_REMOVED) {
      encoding.writeVarString(e, r.ns)
      encoding.writeVarString(e, r.id)
    } else encoding.writeVarUint8Array(e, encodeEntitySnapshot(r.snapshot))
  }
  return encoding.toUint8Array(e)
}

/** Decodes a chunk's records, validating each; throws {@link CodecError}. */
export function decodeRecords(bytes: Uint8Array): BackupRecord[] {
  try {
    const d = decoding.createDecoder(bytes)
    const version = decoding.readVarUint(d)
    if (version !== BACKUP_FORMAT) throw new CodecError(`chunk format ${version} is not supported`)
    const count = decoding.readVarUint(d)
    const out: BackupRecord[] = []
    for (let i = 0; i < count; i++) {
      const kind = decoding.readUint8(d)
      if (kind === RECORD_REMOVED) out.push({ kind, ns: decoding.readVarString(d), id: decoding.readVarString(d) })
      else if (kind === RECORD_FULL || kind === RECORD_DIFF) {
        const snapshot = decodeEntitySnapshot(decoding.readVarUint8Array(d))
        if (snapshot.state.length > 0) Y.decodeUpdate(snapshot.state) // throws on a bad update
        out.push({ kind, snapshot })
      } else throw new CodecError(`unknown record kind ${kind}`)
    }
    if (decoding.hasContent(d)) throw new CodecError('trailing bytes after the records')
    return out
  } catch (cause) {
    if (cause instanceof CodecError) throw cause
    throw new CodecError('chunk records do not decode', { cause })
  }
}

// ---- index --------------------------------------------------------------------------------

/** What a set knows of one entity present at its snapshot. */
export interface IndexEntry {
  readonly ns: string
  readonly id: string
  /** Chunk number holding this set's record of it; -1: no record in this set (unchanged since the parent). */
  readonly chunk: number
  /** The entity's version vector (equal vector: unchanged). */
  readonly vv: VersionVector
  /** Yjs state vector of its full state: the next incremental or differential diffs against it. */
  readonly sv: Uint8Array
  readonly deleted: boolean
  /** {@link entityDigest} of its state. */
  readonly digest: Uint8Array
}

/**
 * A set's own index: an entry for every entity it holds a record of, and the entities removed
 * since its parent. A full holds every entity; an incremental or differential only what changed,
 * so its size follows the change, not the data set. The complete view of a set is its parent's
 * complete view with these entries and removals applied ({@link applyIndexDelta}).
 */
export interface SetIndex {
  readonly entries: readonly IndexEntry[]
  readonly removed: readonly { readonly ns: string; readonly id: string }[]
}

export function encodeIndex(index: SetIndex): Uint8Array {
  const { entries, removed } = index
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, BACKUP_FORMAT)
  encoding.writeVarUint(e, entries.length)
  for (const x of entries) {
    encoding.writeVarString(e, x.ns)
    encoding.writeVarString(e, x.id)
    encoding.writeVarUint(e, x.chunk + 1)
    writeVersionVector(e, x.vv)
    encoding.writeVarUint8Array(e, x.sv)
    encoding.writeUint8(e, x.deleted ? 1 : 0)
    encoding.writeUint8Array(e, x.digest)
  }
  encoding.writeVarUint(e, removed.length)
  for (const r of removed) {
    encoding.writeVarString(e, r.ns)
    encoding.writeVarString(e, r.id)
  }
  return encoding.toUint8Array(e)
}

export function decodeIndex(bytes: Uint8Array): SetIndex {
  try {
    const d = decoding.createDecoder(bytes)
    const version = decoding.readVarUint(d)
    if (version !== BACKUP_FORMAT) throw new CodecError(`index format ${version} is not supported`)
    const count = decoding.readVarUint(d)
    const out: IndexEntry[] = []
    for (let i = 0; i < count; i++) {
      const ns = decoding.readVarString(d)
      const id = decoding.readVarString(d)
      const chunk = decoding.readVarUint(d) - 1
      const vv = readVersionVector(d)
      const sv = decoding.readVarUint8Array(d)
      const deleted = decoding.readUint8(d) === 1
      const digest = decoding.readUint8Array(d, 32)
      out.push({ ns, id, chunk, vv, sv, deleted, digest })
    }
    const nRemoved = decoding.readVarUint(d)
    const removed: { ns: string; id: string }[] = []
    for (let i = 0; i < nRemoved; i++) removed.push({ ns: decoding.readVarString(d), id: decoding.readVarString(d) })
    if (decoding.hasContent(d)) throw new CodecError('trailing bytes after the index')
    return { entries: out, removed }
  } catch (cause) {
    if (cause instanceof CodecError) throw cause
    throw new CodecError('index does not decode', { cause })
  }
}

/**
 * The complete view of a set from its parent's complete view (key order) and its own index:
 * parent entries carry over with no record here (chunk -1), this set's entries replace them,
 * its removals drop them. The result is in key order.
 */
export function applyIndexDelta(parent: readonly IndexEntry[], delta: SetIndex): IndexEntry[] {
  const gone = new Set(delta.removed.map((r) => `${r.ns}\u0000${r.id}`))
  const mine = [...delta.entries].sort(compareKeys)
  const out: IndexEntry[] = []
  let i = 0
  for (const p of parent) {
    while (i < mine.length && compareKeys(mine[i] as IndexEntry, p) < 0) out.push(mine[i++] as IndexEntry)
    if (i < mine.length && compareKeys(mine[i] as IndexEntry, p) === 0) out.push(mine[i++] as IndexEntry)
    else if (!gone.has(`${p.ns}\u0000${p.id}`)) out.push({ ...p, chunk: -1 })
  }
  while (i < mine.length) out.push(mine[i++] as IndexEntry)
  return out
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
  const canonical = canonicalJson({
    vv: input.vv as Record<string, number>,
    deleted: input.deleted,
    sv: [...input.sv].sort((a, b) => a[0] - b[0]).map(([client, clock]) => `${client}:${clock}`),
    value: input.value,
    texts,
  })
  return new Uint8Array(createHash('sha256').update(canonical).digest())
}

/** {@link entityDigest} of an entity loaded in a Y.Doc. */
export function docDigest(vv: VersionVector, deleted: boolean, doc: Y.Doc): Uint8Array {
  const texts: Record<string, string> = {}
  for (const name of textNames(doc)) texts[name] = doc.getText(name).toString()
  return entityDigest({ vv, deleted, sv: Y.decodeStateVector(Y.encodeStateVector(doc)), value: readRecord(doc), texts })
}

/** The digest of a whole set: SHA-256 over `ns \0 id \0 digest` of every entity, in key order. */
export function setDigest(entries: readonly { ns: string; id: string; digest: Uint8Array }[]): string {
  const h = createHash('sha256')
  for (const e of [...entries].sort((a, b) => compareKeys(a, b))) h.update(`${e.ns}\u0000${e.id}\u0000`).update(e.digest)
  return h.digest('hex')
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Entity order (namespace, then id), by code point like the store's keys. */
export function compareKeys(a: { ns: string; id: string }, b: { ns: string; id: string }): number {
  return cmp(a.ns, b.ns) || cmp(a.id, b.id)
}

function cmp(a: string, b: string): number {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return Buffer.compare(x, y)
}

function canonicalJson(value: JsonValue | Record<string, unknown>): string {
  return JSON.stringify(sortKeys(value))
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key])
    return out
  }
  return value
}
