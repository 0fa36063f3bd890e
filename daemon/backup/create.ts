import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { compare, createEntityDoc, dominates, textNames, type EntitySnapshot, type VersionVector } from '../../crdt/index.ts'
import type { StoreSnapshot } from '../store/entity-store.ts'
import {
  BACKUP_FORMAT,
  encodeIndex,
  encodeRecords,
  entityDigest,
  RECORD_DIFF,
  RECORD_FULL,
  RECORD_REMOVED,
  setDigest,
  sha256Hex,
  type BackupRecord,
  type BackupType,
  type ChunkRef,
  type IndexEntry,
  type Manifest,
  type ObjectRef,
} from './format.ts'
import { acquireLock, type LockOptions } from './lock.ts'
import { chainOf, listManifests, resolveIndex } from './read.ts'
import type { BackupRepository, SetWriter } from './repository.ts'
import { openSealer, type KdfParams, type Sealer } from './seal.ts'

/** What a backup reads: a node's store (EntityStore satisfies it). */
export interface BackupSource {
  readonly nodeId: string
  openSnapshot(): Promise<StoreSnapshot>
}

/** Progress of a long operation. */
export interface Progress {
  readonly phase: string
  readonly done: number
  readonly total?: number
}

/** Settings shared by the operations that write to a repository. */
export interface WriteOptions {
  readonly passphrase?: string | undefined
  /** scrypt cost for a new encrypted repository. */
  readonly kdf?: KdfParams
  /** Clock (ids, created times, lock heartbeats). */
  readonly now?: () => number
  readonly lock?: Partial<Omit<LockOptions, 'owner' | 'now'>>
  readonly logger?: Logger
  readonly onProgress?: (p: Progress) => void
  /** Uncompressed bytes per chunk (default 4 MiB). */
  readonly chunkBytes?: number
}

const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024

/**
 * Takes a backup of `source` into `repo`: a consistent point-in-time view (one LevelDB
 * snapshot) written as an immutable set, chunks and index first and the manifest last, under the
 * repository's exclusive lock. An incremental diffs against the node's previous set, a
 * differential against its last full; either becomes a full when there is nothing to diff
 * against. Resolves with the manifest.
 */
export async function createBackup(repo: BackupRepository, source: BackupSource, type: BackupType, options: WriteOptions = {}): Promise<Manifest> {
  const now = options.now ?? Date.now
  const lock = await acquireLock(repo, { owner: `backup create (node ${source.nodeId})`, now, ...(options.logger && { logger: options.logger }), ...options.lock })
  try {
    const { sealer } = await openSealer(repo, { passphrase: options.passphrase, create: true, now, ...(options.kdf && { kdf: options.kdf }) })
    await repo.removeDebris()
    const { sets } = await listManifests(repo)
    const mine = sets.filter((m) => m.node === source.nodeId)
    let parent: Manifest | undefined
    if (type === 'incremental') parent = mine.at(-1)
    else if (type === 'differential') parent = mine.filter((m) => m.type === 'full').at(-1)
    if (!parent) type = 'full'
    let baseIndex: Map<string, IndexEntry> | undefined
    if (parent) {
      const chain = await chainOf(repo, parent) // refuses to extend a broken chain
      baseIndex = new Map((await resolveIndex(repo, sealer, chain)).map((e) => [`${e.ns}\u0000${e.id}`, e]))
    }
    const snapshot = await source.openSnapshot()
    try {
      const base = parent ? (parent.type === 'full' ? parent.id : parent.base) : null
      const head = {
        type,
        parent: parent?.id ?? null,
        base,
        node: source.nodeId,
        vv: snapshot.vv,
        snapshotAt: new Date(now()).toISOString(),
      }
      return await writeSet(repo, sealer, head, entitiesOf(snapshot, baseIndex), options)
    } finally {
      await snapshot.close()
    }
  } finally {
    await lock.release()
  }
}

/** One entity going into a set: its record (none when unchanged) and its index entry. */
export interface SetItem {
  readonly record?: BackupRecord
  readonly entry?: Omit<IndexEntry, 'chunk'>
}

async function* entitiesOf(snapshot: StoreSnapshot, baseIndex: Map<string, IndexEntry> | undefined): AsyncGenerator<SetItem> {
  const seen = new Set<string>()
  for await (const e of snapshot.entities()) {
    const key = `${e.ns}\u0000${e.id}`
    seen.add(key)
    // No Y.Doc unless the entity has texts: the record is materialized in its meta, the state
    // vector is read from the update.
    const sv = Y.encodeStateVectorFromUpdate(e.state)
    const digest = entityDigest({ vv: e.meta.vv, deleted: e.meta.deleted, sv: Y.decodeStateVector(sv), value: e.meta.value, texts: textsOf(e.state, e.meta.texts) })
    const entry = { ns: e.ns, id: e.id, vv: e.meta.vv, sv, deleted: e.meta.deleted, digest }
    const prev = baseIndex?.get(key)
    const snap: EntitySnapshot = { ns: e.ns, id: e.id, state: e.state, vv: e.meta.vv, heads: e.meta.heads, fieldHeads: e.meta.fieldHeads ?? {}, updatedAt: e.meta.updatedAt }
    // A diff is only valid against a state this one grew from; an entity removed and made anew
    // (a wiped namespace) starts a new history and goes in full.
    if (!prev || !dominates(e.meta.vv, prev.vv) || !svDominates(sv, prev.sv)) yield { record: { kind: RECORD_FULL, snapshot: snap }, entry }
    else if (sameVersion(prev.vv, e.meta.vv) && prev.deleted === e.meta.deleted && Buffer.compare(prev.digest, digest) === 0) yield { entry }
    else yield { record: { kind: RECORD_DIFF, snapshot: { ...snap, state: Y.diffUpdate(e.state, prev.sv) } }, entry }
  }
  for (const [key, prev] of baseIndex ?? []) {
    // Gone from the node (its namespace was wiped or reloaded): restores without it.
    if (!seen.has(key)) yield { record: { kind: RECORD_REMOVED, ns: prev.ns, id: prev.id } }
  }
}

function textsOf(state: Uint8Array, names: readonly string[]): Record<string, string> {
  if (names.length === 0) return {}
  const doc = createEntityDoc(state)
  const texts: Record<string, string> = {}
  for (const name of textNames(doc)) texts[name] = doc.getText(name).toString()
  doc.destroy()
  return texts
}

/** True when state vector `a` has every clock of `b` (at least as far). */
function svDominates(a: Uint8Array, b: Uint8Array): boolean {
  const have = Y.decodeStateVector(a)
  for (const [client, clock] of Y.decodeStateVector(b)) if ((have.get(client) ?? 0) < clock) return false
  return true
}

function sameVersion(a: VersionVector, b: VersionVector): boolean {
  return compare(a, b) === 'equal'
}

/** What a set's manifest says beyond what writing its objects computes. */
export interface SetHead {
  readonly type: BackupType
  readonly parent: string | null
  readonly base: string | null
  readonly node: string
  readonly vv: VersionVector
  readonly snapshotAt: string
  readonly synthetic?: { readonly from: readonly string[] }
}

/** Writes a set's chunks, index and (last) manifest; aborts the staged set on any failure. */
export async function writeSet(repo: BackupRepository, sealer: Sealer, head: SetHead, items: AsyncIterable<SetItem>, options: WriteOptions): Promise<Manifest> {
  const now = options.now ?? Date.now
  const id = newSetId(now())
  const writer = await repo.beginSet(id)
  try {
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES
    const chunks: ChunkRef[] = []
    const index: IndexEntry[] = []
    const removed: { ns: string; id: string }[] = []
    const digests: { ns: string; id: string; digest: Uint8Array }[] = []
    let entities = 0
    const namespaces: Record<string, { live: number; deleted: number }> = {}
    let pending: BackupRecord[] = []
    let pendingBytes = 0
    let records = 0
    let done = 0
    const flush = async (): Promise<void> => {
      if (pending.length === 0) return
      const name = `c${String(chunks.length).padStart(6, '0')}`
      const ref = await putObject(writer, sealer, id, name, encodeRecords(pending))
      chunks.push({ ...ref, records: pending.length })
      records += pending.length
      pending = []
      pendingBytes = 0
    }
    for await (const item of items) {
      if (item.record) {
        pending.push(item.record)
        pendingBytes += item.record.kind === RECORD_REMOVED ? 64 : item.record.snapshot.state.length + 256
      }
      if (item.record?.kind === RECORD_REMOVED) removed.push({ ns: item.record.ns, id: item.record.id })
      if (item.entry) {
        entities++
        digests.push({ ns: item.entry.ns, id: item.entry.id, digest: item.entry.digest })
        if (item.record) index.push({ ...item.entry, chunk: chunks.length })
        const counts = (namespaces[item.entry.ns] ??= { live: 0, deleted: 0 })
        if (item.entry.deleted) counts.deleted++
        else counts.live++
        if (++done % 1000 === 0) options.onProgress?.({ phase: 'backup', done })
      }
      if (pendingBytes >= chunkBytes) await flush()
    }
    await flush()
    const indexRef = await putObject(writer, sealer, id, 'index', encodeIndex({ entries: index, removed }))
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      id,
      type: head.type,
      parent: head.parent,
      base: head.base,
      ...(head.synthetic && { synthetic: head.synthetic }),
      created: new Date(now()).toISOString(),
      snapshotAt: head.snapshotAt,
      node: head.node,
      vv: head.vv,
      namespaces,
      entities,
      records,
      stateDigest: setDigest(digests),
      encrypted: sealer.encrypted,
      index: indexRef,
      chunks,
      bytes: indexRef.size + chunks.reduce((n, c) => n + c.size, 0),
    }
    await writer.publish(new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`))
    options.onProgress?.({ phase: 'backup', done, total: done })
    return manifest
  } catch (error) {
    await writer.abort()
    throw error
  }
}

async function putObject(writer: SetWriter, sealer: Sealer, set: string, name: string, plain: Uint8Array): Promise<ObjectRef> {
  const stored = await sealer.seal(plain, `${set}/${name}`)
  await writer.put(name, stored)
  return { name, sha256: sha256Hex(stored), size: stored.length }
}

/** Set ids sort by time: `20261126T130512.345Z-1a2b3c4d`. */
export function newSetId(t: number): string {
  const stamp = new Date(t).toISOString().replace(/[-:]/g, '')
  return `${stamp}-${randomBytes(4).toString('hex')}`
}

