import { readdir, rm } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { Doc } from 'yjs'
import { createEntityDoc, jsonEqual, readText, textNames, ValidationError, type JsonRecord, type TextSplice } from '../../crdt/index.ts'
import { initDataDir, type InitResult } from '../data-dir.ts'
import { UnavailableError } from '../errors.ts'
import { LevelKvStore } from '../storage/level-kv-store.ts'
import { BulkLoader, type LoadEntity } from '../store/bulk-load.ts'
import type { LocalOp, StoredEntity } from '../store/entity-store.ts'
import { BackupError } from './errors.ts'
import type { Progress } from './create.ts'
import type { Manifest } from './format.ts'
import { materialize, methodOf, verifyChain } from './methods.ts'
import { assertVerified, chainOf, type RestoredEntity, type Scope } from './read.ts'
import type { BackupRepository } from './repository.ts'
import type { Sealer } from './seal.ts'
import type { RestoreDirResult } from './read-types.ts'

export type { RestoreDirResult } from './read-types.ts'

/** Which entities a restore brings back. */
export type RestoreScope = Scope

function inScope(scope: RestoreScope): (ns: string, id: string) => boolean {
  return (ns, id) => (scope.ns === undefined || ns === scope.ns) && (scope.id === undefined || id === scope.id)
}

/** The chain of `manifest`, complete and verified (every object read back, every diff rebuilt); throws otherwise. */
export async function verifiedChain(repo: BackupRepository, sealer: Sealer, manifest: Manifest): Promise<Manifest[]> {
  const chain = await chainOf(repo, manifest)
  assertVerified(await verifyChain(repo, sealer, manifest))
  return chain
}

/**
 * The chain to restore `scope` of `manifest` from, checked complete. A whole restore verifies it
 * as it reads ({@link materialize} unscoped checks everything and the caller keeps nothing of a
 * failed one); a scoped one reads only part of it, so the whole chain is verified first.
 */
async function chainFor(repo: BackupRepository, sealer: Sealer, manifest: Manifest, scope: RestoreScope): Promise<Manifest[]> {
  return scope.ns === undefined ? chainOf(repo, manifest) : verifiedChain(repo, sealer, manifest)
}

const LOAD_BATCH = 2000

/**
 * Disaster recovery: rebuilds a node's store from a set into a new data dir, with a fresh node
 * identity, so the node then rejoins and catches up from its peers without ever reusing the old
 * node's sequence numbers. The entities are loaded as the node stored them (binary Yjs state and
 * meta, feed positions kept; {@link BulkLoader}), with the node vector of the backup (a scoped
 * restore keeps the vector empty: it does not hold everything up to it). `clusterKeyFile` joins
 * it to the cluster. On any failure, what this made in `into` is removed again.
 */
export async function restoreIntoDir(
  repo: BackupRepository,
  sealer: Sealer,
  manifest: Manifest,
  into: string,
  options: { clusterKeyFile?: string | undefined; logger: Logger; scope?: RestoreScope; onProgress?: (p: Progress) => void },
): Promise<RestoreDirResult> {
  const scope = options.scope ?? {}
  const chain = await chainFor(repo, sealer, manifest, scope)
  const existed = await dirExists(into)
  if (existed && (await readdir(into)).length > 0) throw new BackupError('RESTORE_TARGET_NOT_EMPTY', `${into} already holds data; restore into an empty or new directory`)
  try {
    const init = (): Promise<InitResult> => initDataDir(into, options.clusterKeyFile !== undefined ? { clusterKeyFile: options.clusterKeyFile } : {})
    const { restoreWhole } = methodOf(manifest)
    if (restoreWhole && scope.ns === undefined) return await restoreWhole(repo, sealer, manifest, into, init)
    const { layout, identity } = await init()
    const kv = new LevelKvStore(layout.db)
    await kv.open()
    // One chunk is written while the next is read: LevelDB writes in a pool thread, so reading
    // the chain (files, decompression, parsing the metas) and writing overlap. Chunks are still
    // added one at a time and in order.
    let writing: Promise<void> = Promise.resolve()
    try {
      const loader = new BulkLoader(kv)
      let batch: LoadEntity[] = []
      let entities = 0
      const add = async (chunk: LoadEntity[], done: number): Promise<void> => {
        try {
          await loader.add(chunk)
        } catch (cause) {
          if (cause instanceof ValidationError) throw new BackupError('BACKUP_CORRUPT', `backup ${manifest.id}: ${cause.message}`, { set: manifest.id, cause })
          throw cause
        }
        options.onProgress?.({ phase: 'restore', done, total: manifest.entities })
      }
      const load = async (): Promise<void> => {
        await writing
        writing = add(batch, entities)
        // Awaited by the next load; handled now, so that a failure while the next chunk is read
        // is not an unhandled rejection.
        writing.catch(() => undefined)
        batch = []
      }
      for await (const e of materialize(repo, sealer, chain, scope)) {
        batch.push({ ns: e.ns, id: e.id, meta: e.meta, ...(e.metaBytes && { metaBytes: e.metaBytes }), state: e.state })
        entities++
        if (batch.length >= LOAD_BATCH) await load()
      }
      await load()
      await writing
      const whole = scope.ns === undefined
      const result = await loader.finish(whole ? { vv: manifest.vv, feedSeq: manifest.feedSeq } : { vv: {} })
      return { backup: manifest.id, into, nodeId: identity.nodeId, entities: result.entities, deleted: result.deleted }
    } finally {
      // A read that failed while a chunk was being written: that write ends before the database
      // closes (and, on failure, before the directory is removed).
      await writing.catch(() => undefined)
      await kv.close()
    }
  } catch (error) {
    // Nothing of a failed restore stays: the directory was new or empty.
    if (existed) for (const name of await readdir(into).catch(() => [])) await rm(`${into}/${name}`, { recursive: true, force: true })
    else await rm(into, { recursive: true, force: true })
    throw error
  }
}

async function dirExists(dir: string): Promise<boolean> {
  try {
    await readdir(dir)
    return true
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

/** How often a live restore retries a write the store refused as OVERLOADED (others were waiting). */
const OVERLOAD_RETRIES = 3

/**
 * Rolls the live node back to a set as forward changes: for each entity in scope, a normal local
 * write on top of its current state (the backup's record as a PUT, each text brought back by a
 * splice, a delete for an entity deleted in the backup or created after it; a write to an
 * entity deleted since is an undelete), so the rollback replicates to every peer like any write
 * and merges without duplicating content. All or nothing: the chain is verified, every entity
 * rebuilt and every write worked out before anything is written, and the writes go to the store
 * as one job, which it commits in one atomic batch (or refuses whole).
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
  const chain = await chainFor(repo, sealer, manifest, scope)
  // The backup's view of every entity in scope, and the node's, side by side.
  const wanted = new Map<string, RestoredEntity>()
  for await (const e of materialize(repo, sealer, chain, scope)) wanted.set(`${e.ns}\u0000${e.id}`, e)
  const current = new Map<string, StoredEntity>()
  for await (const e of store.entities(scope.ns !== undefined ? { ns: scope.ns } : {})) if (filter(e.ns, e.id)) current.set(`${e.ns}\u0000${e.id}`, e)
  const result = { backup: manifest.id, entities: 0, restored: 0, deleted: 0, undeleted: 0, unchanged: 0 }
  const ops: LocalOp[] = []
  for (const key of new Set([...wanted.keys(), ...current.keys()])) {
    result.entities++
    const want = wanted.get(key)
    const have = current.get(key)
    const live = have !== undefined && !have.meta.deleted
    const [ns, id] = key.split('\u0000') as [string, string]
    if (!want || want.meta.deleted) {
      if (live) {
        ops.push({ op: 'delete', ns, id })
        result.deleted++
      } else result.unchanged++
    } else {
      const entityOps = forwardOps(ns, id, want.meta.value, textsOf(want), live ? have.meta.value : undefined, live ? textsOf(have) : {})
      if (entityOps.length === 0) result.unchanged++
      else {
        ops.push(...entityOps)
        if (live) result.restored++
        else result.undeleted++
      }
    }
  }
  if (ops.length > 0) await writeAll(store, ops, manifest)
  options.onProgress?.({ phase: 'restore', done: result.entities, total: result.entities })
  return result
}

/** One store job for every write; an OVERLOADED store is given a few chances to drain first. */
async function writeAll(store: LiveStore, ops: readonly LocalOp[], manifest: Manifest): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await store.write(ops)
      return
    } catch (error) {
      if (!(error instanceof UnavailableError) || error.code !== 'OVERLOADED') throw error
      if (attempt >= OVERLOAD_RETRIES) {
        throw new BackupError(
          'RESTORE_TOO_LARGE',
          `restoring backup ${manifest.id} into the live node takes ${ops.length} writes in one atomic batch, more than the store takes at once (config store.maxQueuedOps); restore one namespace at a time, or raise store.maxQueuedOps`,
          { set: manifest.id, cause: error },
        )
      }
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt))
    }
  }
}

/** The non-empty texts of an entity (from its document; none loaded when it has no texts). */
function textsOf(e: { meta: { texts?: readonly string[] }; state: Uint8Array; doc?: Doc }): Record<string, string> {
  if (!e.meta.texts || e.meta.texts.length === 0) return {}
  const doc = e.doc ?? createEntityDoc(e.state)
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
