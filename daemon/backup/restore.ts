import { readdir } from 'node:fs/promises'
import type { Logger } from 'pino'
import { createEntityDoc, jsonEqual, readRecord, readText, textNames, type EntitySnapshot, type JsonRecord, type TextSplice } from '../../crdt/index.ts'
import { initDataDir } from '../data-dir.ts'
import { LevelKvStore } from '../storage/level-kv-store.ts'
import { EntityStore, type LocalOp, type StoredEntity } from '../store/entity-store.ts'
import { BackupError } from './errors.ts'
import type { Progress } from './create.ts'
import type { Manifest } from './format.ts'
import { assertVerified, chainOf, materialize, verifyChain, type RestoredEntity } from './read.ts'
import type { BackupRepository } from './repository.ts'
import type { Sealer } from './seal.ts'

/** Which entities a restore brings back. */
export interface RestoreScope {
  readonly ns?: string | undefined
  /** One entity (needs `ns`). */
  readonly id?: string | undefined
}

function inScope(scope: RestoreScope): (ns: string, id: string) => boolean {
  return (ns, id) => (scope.ns === undefined || ns === scope.ns) && (scope.id === undefined || id === scope.id)
}

/** The chain of `manifest`, complete and verified (every object read back); throws otherwise. */
export async function verifiedChain(repo: BackupRepository, sealer: Sealer, manifest: Manifest): Promise<Manifest[]> {
  const chain = await chainOf(repo, manifest)
  assertVerified(await verifyChain(repo, sealer, manifest))
  return chain
}

/** What a restore into a new data dir did. */
export interface RestoreDirResult {
  readonly backup: string
  readonly into: string
  readonly nodeId: string
  readonly entities: number
  readonly deleted: number
}

/**
 * Disaster recovery: rebuilds a node's store from a set into a new data dir (binary Yjs state and
 * causal metadata, merged through {@link EntityStore.applySnapshot}; the node vector of the
 * backup), with a fresh node identity, so the node then rejoins and catches up from its peers
 * without ever reusing the old node's sequence numbers. `clusterKeyFile` joins it to the cluster.
 */
export async function restoreIntoDir(
  repo: BackupRepository,
  sealer: Sealer,
  manifest: Manifest,
  into: string,
  options: { clusterKeyFile?: string | undefined; logger: Logger; scope?: RestoreScope; onProgress?: (p: Progress) => void },
): Promise<RestoreDirResult> {
  const chain = await verifiedChain(repo, sealer, manifest)
  if (await hasData(into)) throw new BackupError('RESTORE_TARGET_NOT_EMPTY', `${into} already holds data; restore into an empty or new directory`)
  const { layout, identity } = await initDataDir(into, options.clusterKeyFile !== undefined ? { clusterKeyFile: options.clusterKeyFile } : {})
  const store = new EntityStore({ kv: new LevelKvStore(layout.db), nodeId: identity.nodeId, logger: options.logger })
  await store.open()
  let entities = 0
  let deleted = 0
  try {
    let batch: EntitySnapshot[] = []
    for await (const e of materialize(repo, sealer, chain, inScope(options.scope ?? {}))) {
      batch.push(e.snapshot)
      entities++
      if (e.deleted) deleted++
      if (batch.length >= 500) {
        await applyAll(store, batch)
        batch = []
        options.onProgress?.({ phase: 'restore', done: entities, total: manifest.entities })
      }
    }
    await applyAll(store, batch)
    // A partial (scoped) restore does not hold everything up to the vector: keep it at zero.
    if (options.scope?.ns === undefined) await store.completeSnapshot(manifest.vv)
  } finally {
    await store.close()
  }
  return { backup: manifest.id, into, nodeId: identity.nodeId, entities, deleted }
}

async function applyAll(store: EntityStore, batch: EntitySnapshot[]): Promise<void> {
  if (batch.length === 0) return
  const result = await store.applySnapshot(batch)
  if (result.invalid > 0) throw new BackupError('BACKUP_CORRUPT', `${result.invalid} entity states did not parse`)
}

async function hasData(dir: string): Promise<boolean> {
  try {
    const entries = await readdir(dir)
    return entries.length > 0
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
}

/** What a restore into the live node did. */
export interface RestoreLiveResult {
  readonly backup: string
  /** Entities examined (in the backup or in scope on the node). */
  readonly entities: number
  /** Rewritten to the backup's record and texts. */
  readonly restored: number
  /** Deleted in the backup (or created after it) and deleted now. */
  readonly deleted: number
  /** Deleted on the node and brought back. */
  readonly undeleted: number
  readonly unchanged: number
}

/** The slice of the store a live restore needs. */
export interface LiveStore {
  write(ops: readonly LocalOp[]): Promise<unknown>
  entities(options?: { ns?: string }): AsyncGenerator<StoredEntity>
}

/**
 * Rolls the live node back to a set as forward changes: for each entity in scope, a normal local
 * write on top of its current state (the backup's record as a PUT, each text brought back by a
 * splice, a delete for an entity deleted in the backup or created after it; a write to an
 * entity deleted since is an undelete), so the rollback replicates to every peer like any write
 * and merges without duplicating content.
 */
export async function restoreIntoLive(
  repo: BackupRepository,
  sealer: Sealer,
  manifest: Manifest,
  store: LiveStore,
  options: { scope?: RestoreScope; onProgress?: (p: Progress) => void } = {},
): Promise<RestoreLiveResult> {
  const scope = options.scope ?? {}
  const filter = inScope(scope)
  const chain = await verifiedChain(repo, sealer, manifest)
  // The backup's view of every entity in scope, and the node's, side by side.
  const wanted = new Map<string, RestoredEntity>()
  for await (const e of materialize(repo, sealer, chain, filter)) wanted.set(`${e.snapshot.ns}\u0000${e.snapshot.id}`, e)
  const current = new Map<string, StoredEntity>()
  for await (const e of store.entities(scope.ns !== undefined ? { ns: scope.ns } : {})) if (filter(e.ns, e.id)) current.set(`${e.ns}\u0000${e.id}`, e)
  const result = { backup: manifest.id, entities: 0, restored: 0, deleted: 0, undeleted: 0, unchanged: 0 }
  let ops: LocalOp[] = []
  const flush = async (): Promise<void> => {
    if (ops.length === 0) return
    await store.write(ops)
    ops = []
    options.onProgress?.({ phase: 'restore', done: result.entities })
  }
  const keys = [...new Set([...wanted.keys(), ...current.keys()])]
  for (const key of keys) {
    result.entities++
    const want = wanted.get(key)
    const have = current.get(key)
    const live = have !== undefined && !have.meta.deleted
    const [ns, id] = key.split('\u0000') as [string, string]
    if (!want || want.deleted) {
      if (live) {
        ops.push({ op: 'delete', ns, id })
        result.deleted++
      } else result.unchanged++
    } else {
      const record = readRecord(want.doc)
      const texts = Object.fromEntries(textNames(want.doc).map((name) => [name, readText(want.doc, name)]))
      const haveTexts = live ? await currentTexts(have) : {}
      const entityOps = forwardOps(ns, id, record, texts, live ? have.meta.value : undefined, haveTexts)
      if (entityOps.length === 0) result.unchanged++
      else {
        ops.push(...entityOps)
        if (live) result.restored++
        else result.undeleted++
      }
    }
    if (ops.length >= 500) await flush()
  }
  await flush()
  return result
}

async function currentTexts(e: StoredEntity): Promise<Record<string, string>> {
  const doc = createEntityDoc(e.state)
  return Object.fromEntries(textNames(doc).map((name) => [name, readText(doc, name)]))
}

/** The local writes that turn (haveRecord, haveTexts) into (record, texts). */
export function forwardOps(
  ns: string,
  id: string,
  record: JsonRecord,
  texts: Record<string, string>,
  haveRecord: JsonRecord | undefined,
  haveTexts: Record<string, string>,
): LocalOp[] {
  const ops: LocalOp[] = []
  if (haveRecord === undefined || !jsonEqual(record, haveRecord)) ops.push({ op: 'put', ns, id, value: record })
  for (const name of new Set([...Object.keys(texts), ...Object.keys(haveTexts)])) {
    const splice = spliceBetween(haveRecord === undefined ? '' : (haveTexts[name] ?? ''), texts[name] ?? '')
    if (splice) ops.push({ op: 'text', ns, id, name, splices: [splice] })
  }
  return ops
}

/** One splice turning `from` into `to` (common prefix and suffix kept), or undefined when equal. */
export function spliceBetween(from: string, to: string): TextSplice | undefined {
  if (from === to) return undefined
  let start = 0
  const max = Math.min(from.length, to.length)
  while (start < max && from.charCodeAt(start) === to.charCodeAt(start)) start++
  // Never split a surrogate pair.
  if (start > 0 && isHighSurrogate(from.charCodeAt(start - 1))) start--
  let end = 0
  while (end < max - start && from.charCodeAt(from.length - 1 - end) === to.charCodeAt(to.length - 1 - end)) end++
  if (end > 0 && isLowSurrogate(from.charCodeAt(from.length - end))) end--
  return [start, from.length - end - start, to.slice(start, to.length - end)]
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff
}
