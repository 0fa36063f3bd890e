import * as Y from 'yjs'
import { CodecError, createEntityDoc, isDeletedByHeads, type EntitySnapshot } from '../../crdt/index.ts'
import { BackupError, corrupt } from './errors.ts'
import {
  applyIndexDelta,
  BACKUP_FORMAT,
  compareKeys,
  decodeIndex,
  decodeRecords,
  docDigest,
  RECORD_FULL,
  RECORD_REMOVED,
  setDigest,
  sha256Hex,
  type BackupRecord,
  type IndexEntry,
  type Manifest,
  type ObjectRef,
  type SetIndex,
} from './format.ts'
import { MANIFEST, setKey, type BackupRepository } from './repository.ts'
import type { Sealer } from './seal.ts'

/** A set's manifest, or BACKUP_NOT_FOUND / BACKUP_CORRUPT / UNSUPPORTED_FORMAT. */
export async function loadManifest(repo: BackupRepository, id: string): Promise<Manifest> {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) throw new BackupError('BACKUP_NOT_FOUND', `no backup ${id} in ${repo.location}`, { set: id })
  const bytes = await repo.get(setKey(id, MANIFEST))
  if (bytes === undefined) throw new BackupError('BACKUP_NOT_FOUND', `no backup ${id} in ${repo.location}`, { set: id })
  let manifest: Manifest
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes)) as Manifest
  } catch (cause) {
    throw corrupt(id, MANIFEST, 'not JSON', cause)
  }
  if (typeof manifest !== 'object' || manifest === null || typeof manifest.format !== 'number') throw corrupt(id, MANIFEST, 'no format version')
  if (manifest.format > BACKUP_FORMAT) {
    throw new BackupError('UNSUPPORTED_FORMAT', `backup ${id} has format ${manifest.format}; this meshsync reads up to ${BACKUP_FORMAT}`, { set: id, object: MANIFEST })
  }
  if (manifest.id !== id || !Array.isArray(manifest.chunks) || typeof manifest.index !== 'object') throw corrupt(id, MANIFEST, 'malformed manifest')
  return manifest
}

/** Every published set's manifest, oldest snapshot first; unreadable ones are returned apart. */
export async function listManifests(repo: BackupRepository): Promise<{ sets: Manifest[]; broken: { id: string; code: string; message: string }[] }> {
  const sets: Manifest[] = []
  const broken: { id: string; code: string; message: string }[] = []
  for (const id of await repo.listSets()) {
    try {
      sets.push(await loadManifest(repo, id))
    } catch (error) {
      if (!(error instanceof BackupError) || error.code === 'TARGET_UNREACHABLE') throw error
      broken.push({ id, code: error.code, message: error.message })
    }
  }
  return { sets: sets.sort(bySnapshot), broken }
}

/** Oldest snapshot first; ties by creation, then id. */
export function bySnapshot(a: Manifest, b: Manifest): number {
  return a.snapshotAt.localeCompare(b.snapshotAt) || a.created.localeCompare(b.created) || a.id.localeCompare(b.id)
}

/** Resolves `latest`, a full id or a unique id prefix to a set id. */
export async function resolveSetId(repo: BackupRepository, ref: string, node?: string): Promise<string> {
  const ids = await repo.listSets()
  if (ref === 'latest') {
    const { sets } = await listManifests(repo)
    const mine = node === undefined ? sets : sets.filter((m) => m.node === node)
    const last = mine.at(-1)
    if (!last) throw new BackupError('BACKUP_NOT_FOUND', `no backups in ${repo.location}`)
    return last.id
  }
  if (ids.includes(ref)) return ref
  const matches = ids.filter((id) => id.startsWith(ref))
  if (matches.length === 1) return matches[0] as string
  if (matches.length > 1) throw new BackupError('BACKUP_AMBIGUOUS', `${ref} matches ${matches.length} backups; give more of the id`, { set: ref })
  throw new BackupError('BACKUP_NOT_FOUND', `no backup ${ref} in ${repo.location}`, { set: ref })
}

/** The chain a set needs, oldest first (a full, then diffs); CHAIN_INCOMPLETE when a link is missing. */
export async function chainOf(repo: BackupRepository, manifest: Manifest): Promise<Manifest[]> {
  const chain: Manifest[] = [manifest]
  const seen = new Set([manifest.id])
  let current = manifest
  while (current.type !== 'full') {
    const parent = current.parent
    if (parent === null) throw corrupt(current.id, MANIFEST, `a ${current.type} backup without a parent`)
    if (seen.has(parent)) throw corrupt(current.id, MANIFEST, 'the chain loops')
    try {
      current = await loadManifest(repo, parent)
    } catch (cause) {
      if (cause instanceof BackupError && cause.code === 'BACKUP_NOT_FOUND') {
        throw new BackupError('CHAIN_INCOMPLETE', `backup ${manifest.id} needs ${parent}, which is missing from ${repo.location}`, { set: manifest.id, cause })
      }
      throw cause
    }
    seen.add(current.id)
    chain.unshift(current)
  }
  return chain
}

/** Reads one object of a set, checks its size and SHA-256, decrypts and decompresses it. */
export async function readObject(repo: BackupRepository, sealer: Sealer, set: string, ref: ObjectRef): Promise<Uint8Array> {
  const stored = await repo.get(setKey(set, ref.name))
  if (stored === undefined) throw corrupt(set, ref.name, 'missing')
  if (stored.length !== ref.size) throw corrupt(set, ref.name, `size ${stored.length}, expected ${ref.size}`)
  if (sha256Hex(stored) !== ref.sha256) throw corrupt(set, ref.name, 'SHA-256 mismatch')
  try {
    return await sealer.open(stored, `${set}/${ref.name}`)
  } catch (cause) {
    if (cause instanceof BackupError && cause.code === 'PASSPHRASE_REQUIRED') throw cause
    throw corrupt(set, ref.name, 'does not decrypt or decompress', cause)
  }
}

/** A set's own index (for an incremental or differential: only what changed; see {@link resolveIndex}). */
export async function readIndex(repo: BackupRepository, sealer: Sealer, manifest: Manifest): Promise<SetIndex> {
  const plain = await readObject(repo, sealer, manifest.id, manifest.index)
  try {
    return decodeIndex(plain)
  } catch (cause) {
    throw corrupt(manifest.id, manifest.index.name, cause instanceof CodecError ? cause.message : 'does not decode', cause)
  }
}

/**
 * The complete index of the last set of a chain: every entity present at its snapshot, in key
 * order, with `chunk` >= 0 for those this set holds a record of.
 */
export async function resolveIndex(repo: BackupRepository, sealer: Sealer, chain: readonly Manifest[]): Promise<IndexEntry[]> {
  let view: IndexEntry[] = []
  for (const m of chain) {
    const own = await readIndex(repo, sealer, m)
    view = m.type === 'full' ? [...own.entries].sort(compareKeys) : applyIndexDelta(view, own)
  }
  const target = chain.at(-1) as Manifest
  if (view.length !== target.entities) throw corrupt(target.id, target.index.name, `the chain's index holds ${view.length} entities, the manifest ${target.entities}`)
  return view
}

export async function readChunk(repo: BackupRepository, sealer: Sealer, manifest: Manifest, n: number): Promise<BackupRecord[]> {
  const ref = manifest.chunks[n]
  if (!ref) throw corrupt(manifest.id, MANIFEST, `names no chunk ${n}`)
  const plain = await readObject(repo, sealer, manifest.id, ref)
  let records: BackupRecord[]
  try {
    records = decodeRecords(plain)
  } catch (cause) {
    throw corrupt(manifest.id, ref.name, cause instanceof CodecError ? cause.message : 'does not decode', cause)
  }
  if (records.length !== ref.records) throw corrupt(manifest.id, ref.name, `${records.length} records, expected ${ref.records}`)
  return records
}

/** One problem verify found. */
export interface VerifyProblem {
  readonly set: string
  readonly object: string
  readonly code: string
  readonly message: string
}

/** What verify checked. */
export interface VerifyResult {
  readonly id: string
  readonly ok: boolean
  /** The sets checked: the set and every set of its chain. */
  readonly chain: readonly string[]
  readonly objects: number
  readonly records: number
  readonly bytes: number
  readonly problems: readonly VerifyProblem[]
}

/**
 * Reads back every object of a set and of its chain: size, SHA-256, decryption, decompression,
 * decoding of every record, and that each indexed entity's record is where the index says.
 */
export async function verifyChain(
  repo: BackupRepository,
  sealer: Sealer,
  manifest: Manifest,
  onProgress?: (p: { set: string; object: string; done: number; total: number }) => void,
): Promise<VerifyResult> {
  const chain = await chainOf(repo, manifest)
  const problems: VerifyProblem[] = []
  let objects = 0
  let records = 0
  let bytes = 0
  const total = chain.reduce((n, m) => n + m.chunks.length + 1, 0)
  for (const m of chain) {
    const check = async (object: string, read: () => Promise<number>): Promise<void> => {
      try {
        records += await read()
      } catch (error) {
        if (!(error instanceof BackupError) || error.code !== 'BACKUP_CORRUPT') throw error
        problems.push({ set: m.id, object, code: error.code, message: error.message })
      }
      objects++
      onProgress?.({ set: m.id, object, done: objects, total })
    }
    let index: SetIndex | undefined
    await check(m.index.name, async () => {
      index = await readIndex(repo, sealer, m)
      const listed = index.entries.length + index.removed.length
      if ((m.type === 'full' && index.entries.length !== m.entities) || listed !== m.records) {
        throw corrupt(m.id, m.index.name, `${index.entries.length} entries and ${index.removed.length} removals do not match the manifest`)
      }
      return 0
    })
    const expected = new Map<number, Set<string>>()
    for (const e of index?.entries ?? []) if (e.chunk >= 0) expected.set(e.chunk, (expected.get(e.chunk) ?? new Set()).add(`${e.ns}\u0000${e.id}`))
    for (let n = 0; n < m.chunks.length; n++) {
      const ref = m.chunks[n] as (typeof m.chunks)[number]
      await check(ref.name, async () => {
        const recs = await readChunk(repo, sealer, m, n)
        const want = expected.get(n) ?? new Set<string>()
        for (const r of recs) if (r.kind !== RECORD_REMOVED) want.delete(`${r.snapshot.ns}\u0000${r.snapshot.id}`)
        if (index !== undefined && want.size > 0) throw corrupt(m.id, ref.name, `${want.size} indexed entities missing from it`)
        return recs.length
      })
      bytes += ref.size
    }
    bytes += m.index.size
  }
  return { id: manifest.id, ok: problems.length === 0, chain: chain.map((m) => m.id), objects, records, bytes, problems }
}

/** Throws BACKUP_CORRUPT naming the first bad object (and counting the others). */
export function assertVerified(result: VerifyResult): void {
  const first = result.problems[0]
  if (!first) return
  const more = result.problems.length > 1 ? ` (and ${result.problems.length - 1} more problems)` : ''
  throw new BackupError('BACKUP_CORRUPT', `${first.message}${more}`, { set: first.set, object: first.object })
}

/** An entity as a set restores it: merged Yjs state and causal metadata. */
export interface RestoredEntity {
  readonly snapshot: EntitySnapshot
  readonly deleted: boolean
  readonly doc: Y.Doc
  readonly entry: IndexEntry
}

/**
 * The entities of the chain's last set, each rebuilt by merging its full state with the diffs
 * that follow it (`Y.mergeUpdates`), in key order, each checked against the digest the index
 * recorded at backup time (BACKUP_CORRUPT otherwise). `filter` limits it to some entities.
 * Streams: every set's records are in key order, so one chunk per set is in memory at a time.
 */
export async function* materialize(
  repo: BackupRepository,
  sealer: Sealer,
  chain: readonly Manifest[],
  filter: (ns: string, id: string) => boolean = () => true,
): AsyncGenerator<RestoredEntity> {
  const target = chain.at(-1) as Manifest
  const targetIndex = (await resolveIndex(repo, sealer, chain)).filter((e) => filter(e.ns, e.id))
  const wanted = new Set(targetIndex.map((e) => `${e.ns}\u0000${e.id}`))
  const cursors: RecordCursor[] = []
  for (const m of chain) {
    const index = (await readIndex(repo, sealer, m)).entries
    const chunks = [...new Set(index.filter((e) => e.chunk >= 0 && wanted.has(`${e.ns}\u0000${e.id}`)).map((e) => e.chunk))].sort((a, b) => a - b)
    const cursor = new RecordCursor(recordsOf(repo, sealer, m, chunks))
    await cursor.advance()
    cursors.push(cursor)
  }
  for (const entry of targetIndex) {
    let updates: Uint8Array[] = []
    let last: EntitySnapshot | undefined
    for (const cursor of cursors) {
      while (cursor.head && compareKeys(cursor.head.snapshot, entry) < 0) await cursor.advance()
      const r = cursor.head
      if (!r || compareKeys(r.snapshot, entry) !== 0) continue
      if (r.kind === RECORD_FULL || !last) updates = [r.snapshot.state]
      else updates.push(r.snapshot.state)
      last = r.snapshot
      await cursor.advance()
    }
    if (!last) throw new BackupError('CHAIN_INCOMPLETE', `backup ${target.id}: no record of ${entry.ns}/${entry.id} in its chain`, { set: target.id })
    const state = updates.length === 1 ? (updates[0] as Uint8Array) : Y.mergeUpdates(updates)
    const doc = createEntityDoc(state)
    const deleted = isDeletedByHeads(last.heads)
    const digest = docDigest(last.vv, deleted, doc)
    if (Buffer.compare(digest, entry.digest) !== 0) {
      throw new BackupError('BACKUP_CORRUPT', `backup ${target.id}: ${entry.ns}/${entry.id} does not rebuild to the state recorded at backup time`, { set: target.id })
    }
    yield { snapshot: { ...last, state }, deleted, doc, entry }
  }
}

type EntityRecord = Extract<BackupRecord, { snapshot: EntitySnapshot }>

/** The entity records (not removals) of some chunks of a set, in key order. */
async function* recordsOf(repo: BackupRepository, sealer: Sealer, m: Manifest, chunks: readonly number[]): AsyncGenerator<EntityRecord> {
  for (const n of chunks) {
    for (const record of await readChunk(repo, sealer, m, n)) if (record.kind !== RECORD_REMOVED) yield record
  }
}

/** A one-record look-ahead over a set's records. */
class RecordCursor {
  head: EntityRecord | undefined
  readonly #it: AsyncIterator<EntityRecord>

  constructor(it: AsyncIterator<EntityRecord>) {
    this.#it = it
  }

  async advance(): Promise<void> {
    const next = await this.#it.next()
    this.head = next.done ? undefined : next.value
  }
}

/** The digest of a set's whole state, recomputed from its index (equal to manifest.stateDigest). */
export function digestOfIndex(index: readonly IndexEntry[]): string {
  return setDigest(index)
}
