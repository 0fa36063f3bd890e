import type { Logger } from 'pino'
import * as Y from 'yjs'
import { createEntityDoc, dominates, textNames, type ChangeRecord, type VersionVector } from '../../crdt/index.ts'
import { compareKeys } from '../storage/key-order.ts'
import type { EntityMeta } from '../store/entity-meta.ts'
import type { RawEntity, SnapshotView } from '../store/snapshot-view.ts'
import { BACKUP_FORMAT, diffMeta, entityDigest, namespaceOf, parseMeta, RECORD_DIFF, RECORD_FULL, type BackupType, type Manifest, type NamespaceCounts } from './format.ts'
import { acquireLock, type LockOptions } from './lock.ts'
import { chainKeys } from './entities-read.ts'
import { chainOf, listManifests } from './read.ts'
import type { BackupRepository } from './repository.ts'
import { openSealer, type KdfParams } from './seal.ts'
import { SetBuilder, type SetHead } from './set-writer.ts'

/** What a backup reads: a node's store (EntityStore satisfies it). */
export interface BackupSource {
  readonly nodeId: string
  openSnapshot(): Promise<SnapshotView>
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
  readonly lock?: Partial<Omit<LockOptions, 'owner' | 'now' | 'mode'>>
  readonly logger?: Logger
  readonly onProgress?: (p: Progress) => void
  /** Uncompressed bytes per chunk (default 8 MiB). */
  readonly chunkBytes?: number
}

const PROGRESS_EVERY = 10_000

/**
 * Takes a backup of `source` into `repo`: a consistent point-in-time view (one LevelDB
 * snapshot) written as an immutable set, chunks and index first and the manifest last, under the
 * repository's exclusive lock. A full stores every entity as the store holds it (meta and Yjs
 * state, undecoded). An incremental (against the node's previous set) or a differential (against
 * its last full) reads only what changed since that set: the store's change feed after the
 * set's feed position and its change log after the set's version vector. Either becomes a full
 * when there is nothing to diff against. Resolves with the manifest.
 */
export async function createBackup(repo: BackupRepository, source: BackupSource, type: BackupType, options: WriteOptions = {}): Promise<Manifest> {
  const now = options.now ?? Date.now
  const log = options.logger
  const lock = await acquireLock(repo, { owner: `backup create (node ${source.nodeId})`, mode: 'exclusive', now, ...(log && { logger: log }), ...options.lock })
  try {
    const { sealer } = await openSealer(repo, { passphrase: options.passphrase, create: true, now, ...(options.kdf && { kdf: options.kdf }) })
    await repo.removeDebris()
    const { sets } = await listManifests(repo)
    // Files sets hold no entity records to diff against: chains grow from entity sets only.
    const mine = sets.filter((m) => m.node === source.nodeId && m.method === undefined)
    let parent: Manifest | undefined
    if (type === 'incremental') parent = mine.at(-1)
    else if (type === 'differential') parent = mine.filter((m) => m.type === 'full').at(-1)
    let chain: Manifest[] | undefined
    if (parent) chain = await chainOf(repo, parent) // refuses to extend a broken chain
    const snapshot = await source.openSnapshot()
    try {
      if (parent && !extends_(snapshot, parent)) {
        log?.info({ parent: parent.id }, 'the store is not a continuation of the previous backup: taking a full')
        parent = undefined
      }
      if (parent && !logCovers(snapshot, parent)) {
        // Entities merged from a peer's snapshot since: the feed and the log do not show all of it.
        log?.info({ parent: parent.id }, 'the store caught up by snapshot since the previous backup: taking a full')
        parent = undefined
      }
      const head: SetHead = {
        type: parent ? type : 'full',
        parent: parent?.id ?? null,
        base: parent ? (parent.type === 'full' ? parent.id : parent.base) : null,
        node: source.nodeId,
        vv: snapshot.vv,
        feedSeq: snapshot.feedSeq,
        snapshotAt: new Date(now()).toISOString(),
      }
      const builder = await SetBuilder.begin(repo, sealer, { now, ...(options.chunkBytes !== undefined && { chunkBytes: options.chunkBytes }) })
      try {
        if (parent && chain) {
          const { counts, resets } = await writeChanges(builder, snapshot, parent, () => chainKeys(repo, sealer, chain as Manifest[]), options)
          return await builder.publish(head, counts, { resets })
        }
        return await builder.publish(head, await writeEverything(builder, snapshot, options))
      } catch (error) {
        await builder.abort()
        throw error
      }
    } finally {
      await snapshot.close()
    }
  } finally {
    await lock.release()
  }
}

/** True when the store can be diffed against `parent`: a v2 set whose moment the store has gone past. */
function extends_(snapshot: SnapshotView, parent: Manifest): boolean {
  return parent.format === BACKUP_FORMAT && typeof parent.feedSeq === 'number' && snapshot.feedSeq >= parent.feedSeq && dominates(snapshot.vv, parent.vv)
}

/**
 * True when the store's change log holds every change since `parent`: no snapshot catch-up
 * raised its floor past the parent's vector (such a catch-up merges whole entity states, some
 * of which neither the log nor the feed shows).
 */
function logCovers(snapshot: SnapshotView, parent: Manifest): boolean {
  return Object.entries(snapshot.logFloor).every(([origin, floor]) => floor <= (parent.vv[origin] ?? 0))
}

/** A full: every entity as stored. */
async function writeEverything(builder: SetBuilder, snapshot: SnapshotView, options: WriteOptions): Promise<{ namespaces: NamespaceCounts; entities: number }> {
  const totals: Record<string, number> = {}
  let ns = ''
  let prefix = '\u0000'
  let done = 0
  for await (const batch of snapshot.rawEntities()) {
    for (const e of batch) {
      if (!e.key.startsWith(prefix)) {
        ns = namespaceOf(e.key)
        prefix = `${ns}\u0000`
      }
      totals[ns] = (totals[ns] ?? 0) + 1
      builder.add(e.key, RECORD_FULL, e.meta, e.state)
      if (builder.wantsFlush) await builder.flush()
    }
    const before = done
    done += batch.length
    if (Math.floor(done / PROGRESS_EVERY) !== Math.floor(before / PROGRESS_EVERY)) options.onProgress?.({ phase: 'backup', done })
  }
  options.onProgress?.({ phase: 'backup', done, total: done })
  return countsOf(totals, snapshot.liveCounts)
}

/**
 * An incremental or differential (the log holds every change since the parent: see
 * {@link logCovers}): the entities the change feed shows changed after the parent's feed
 * position, and those the change log shows touched after the parent's vector, each as a diff
 * against its state at the parent where the log accounts for everything it gained, whole
 * otherwise; every entity of a namespace wiped since the parent, whole, with the namespace reset.
 */
async function writeChanges(
  builder: SetBuilder,
  snapshot: SnapshotView,
  parent: Manifest,
  parentKeys: () => Promise<Set<string>>,
  options: WriteOptions,
): Promise<{ counts: { namespaces: NamespaceCounts; entities: number }; resets: string[] }> {
  const P = parent.vv
  const resets = Object.entries(snapshot.removedAt)
    .filter(([, at]) => at > parent.feedSeq)
    .map(([ns]) => ns)
    .sort(compareKeys)
  const reset = new Set(resets)
  // What the log recorded since the parent, by entity.
  const logged = new Map<string, ChangeRecord[]>()
  for (const [origin, upTo] of Object.entries(snapshot.vv)) {
    for await (const c of snapshot.changesAfter(origin, P[origin] ?? 0, upTo)) {
      const key = `${c.ns}\u0000${c.id}`
      const list = logged.get(key)
      if (list) list.push(c)
      else logged.set(key, [c])
    }
  }
  const totals: Record<string, number> = {}
  for (const [ns, c] of Object.entries(parent.namespaces)) if (!reset.has(ns)) totals[ns] = c.live + c.deleted
  let known: Set<string> | undefined
  let done = 0
  const namespaces = [...new Set([...(await snapshot.namespaces()), ...[...logged.keys()].map(namespaceOf)])].sort(compareKeys)
  for (const ns of namespaces) {
    if (reset.has(ns)) {
      for await (const batch of snapshot.rawEntities({ ns })) {
        for (const e of batch) {
          builder.add(e.key, RECORD_FULL, e.meta, e.state)
          totals[ns] = (totals[ns] ?? 0) + 1
          if (builder.wantsFlush) await builder.flush()
        }
        done += batch.length
      }
      continue
    }
    const keys = new Set<string>()
    for await (const { id } of snapshot.feedAfter(ns, parent.feedSeq)) keys.add(`${ns}\u0000${id}`)
    const prefix = `${ns}\u0000`
    for (const key of logged.keys()) if (key.startsWith(prefix)) keys.add(key)
    const sorted = [...keys].sort(compareKeys)
    for (let i = 0; i < sorted.length; i += 1000) {
      const part = sorted.slice(i, i + 1000)
      const raws = await snapshot.rawEntitiesOf(part)
      for (const raw of raws) {
        if (!raw) continue // in the log only (a namespace this node does not apply)
        const changes = logged.get(raw.key)
        const meta = parseMeta(raw.meta)
        const r = changes ? diffRecord(raw, meta, changes, P, snapshot.vv) : undefined
        if (r) builder.add(raw.key, RECORD_DIFF, r.meta, r.state, r.digest)
        else builder.add(raw.key, RECORD_FULL, raw.meta, raw.state)
        if (!existedBefore(meta, changes, P)) {
          known ??= await parentKeys()
          if (!known.has(raw.key)) totals[ns] = (totals[ns] ?? 0) + 1
        }
        if (builder.wantsFlush) await builder.flush()
      }
      done += part.length
      options.onProgress?.({ phase: 'backup', done })
    }
  }
  options.onProgress?.({ phase: 'backup', done, total: done })
  return { counts: countsOf(totals, snapshot.liveCounts), resets }
}

/**
 * The entity as a diff against its state at the parent, or undefined when that cannot be told
 * from the log: every origin whose latest change to it is after the parent's vector must have
 * that change in the log, every change logged must be in its state (a change recorded but not
 * applied is not), nothing beyond the node's vector (a snapshot merge under way), no new
 * incarnation since the parent. Its state vector at the parent is its present one with each
 * client moved back to where the logged changes start.
 */
function diffRecord(raw: RawEntity, meta: EntityMeta, changes: readonly ChangeRecord[], P: VersionVector, N: VersionVector): { meta: Uint8Array; state: Uint8Array; digest: Uint8Array } | undefined {
  if (!dominates(N, meta.vv)) return undefined
  const incarnation = (meta as { incarnation?: { origin: string; seq: number } }).incarnation
  if (incarnation && incarnation.seq > (P[incarnation.origin] ?? 0)) return undefined
  for (const [origin, seq] of Object.entries(meta.vv)) {
    if (seq > (P[origin] ?? 0) && !changes.some((c) => c.origin === origin && c.seq === seq)) return undefined
  }
  if (raw.state.length === 0) return undefined
  const sv = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(raw.state))
  const before = new Map(sv)
  for (const c of changes) {
    if (c.update.length === 0) continue
    const { from, to } = Y.parseUpdateMeta(c.update)
    for (const [client, clock] of to) if ((sv.get(client) ?? 0) < clock) return undefined
    for (const [client, clock] of from) before.set(client, Math.min(before.get(client) ?? clock, clock))
  }
  const diff = Y.diffUpdate(raw.state, Y.encodeStateVector(before))
  if (diff.length >= raw.state.length) return undefined // no smaller than the entity: store it whole
  const digest = entityDigest({ vv: meta.vv, deleted: meta.deleted, sv, value: meta.value, texts: textsOf(raw.state, meta.texts) })
  return { meta: diffMeta(meta), state: diff, digest }
}

/**
 * True when the entity certainly existed at the parent: it holds a change the parent's vector
 * covers, or a logged change says it followed one. Otherwise the parent's keys tell.
 */
function existedBefore(meta: EntityMeta, changes: readonly ChangeRecord[] | undefined, P: VersionVector): boolean {
  const covered = (vv: VersionVector): boolean => Object.entries(vv).some(([origin, seq]) => seq > 0 && seq <= (P[origin] ?? 0))
  return covered(meta.vv) || (changes ?? []).some((c) => covered(c.context))
}

function textsOf(state: Uint8Array, names: readonly string[] | undefined): Record<string, string> {
  if (!names || names.length === 0) return {}
  const doc = createEntityDoc(state)
  const texts: Record<string, string> = {}
  for (const name of textNames(doc)) texts[name] = doc.getText(name).toString()
  doc.destroy()
  return texts
}

/** Per-namespace counts from the entities per namespace and the store's live counts. */
function countsOf(totals: Record<string, number>, live: Readonly<Record<string, number>>): { namespaces: NamespaceCounts; entities: number } {
  const namespaces: Record<string, { live: number; deleted: number }> = {}
  let entities = 0
  for (const ns of Object.keys(totals).sort(compareKeys)) {
    const total = totals[ns] as number
    if (total <= 0) continue
    const l = Math.min(total, live[ns] ?? 0)
    namespaces[ns] = { live: l, deleted: total - l }
    entities += total
  }
  return { namespaces, entities }
}

