/**
 * Reading an entity set's chain (format.ts: index and chunks of entity records): the records of
 * each entity across the chain, walked in key order, the entities they make, and verify.
 */
import * as Y from 'yjs'
import { CodecError, createEntityDoc } from '../../crdt/index.ts'
import { compareKeys, lowerBound } from '../storage/key-order.ts'
import type { EntityMeta } from '../store/entity-meta.ts'
import { BackupError, corrupt } from './errors.ts'
import {
  completeMeta,
  decodeChunk,
  decodeIndex,
  DiffDigest,
  docDigest,
  namespaceOf,
  parseMeta,
  RECORD_DIFF,
  RECORD_FULL,
  type ChunkRecords,
  type Manifest,
  type SetIndex,
} from './format.ts'
import type { RestoredEntity, Scope, VerifyProblem, VerifyResult } from './read-types.ts'
import { readObject } from './objects.ts'
import { scopeRange } from './scope.ts'
import { chainOf } from './read.ts'
import { MANIFEST, type BackupRepository } from './repository.ts'
import type { Sealer } from './seal.ts'

/** A set's index (the keys of its records, in key order), checked against its manifest. */
export async function readIndex(repo: BackupRepository, sealer: Sealer, manifest: Manifest): Promise<SetIndex> {
  const plain = await readObject(repo, sealer, manifest.id, manifest.index)
  let index: SetIndex
  try {
    index = decodeIndex(plain)
  } catch (cause) {
    throw corrupt(manifest.id, manifest.index.name, cause instanceof CodecError ? cause.message : 'does not decode', cause)
  }
  if (index.keys.length !== manifest.records) throw corrupt(manifest.id, manifest.index.name, `${index.keys.length} keys for ${manifest.records} records`)
  if (manifest.type === 'full' && (index.resets.length > 0 || index.removed.length > 0)) throw corrupt(manifest.id, manifest.index.name, 'a full with removals')
  return index
}

/** The records of chunk `n` of a set (structure checked; metas and states not parsed). */
export async function readChunk(repo: BackupRepository, sealer: Sealer, manifest: Manifest, n: number): Promise<ChunkRecords> {
  const ref = manifest.chunks[n]
  if (!ref) throw corrupt(manifest.id, MANIFEST, `names no chunk ${n}`)
  const plain = await readObject(repo, sealer, manifest.id, ref)
  let records: ChunkRecords
  try {
    records = decodeChunk(plain)
  } catch (cause) {
    throw corrupt(manifest.id, ref.name, cause instanceof CodecError ? cause.message : 'does not decode', cause)
  }
  if (records.metas.length !== ref.records) throw corrupt(manifest.id, ref.name, `${records.metas.length} records, expected ${ref.records}`)
  return records
}

/** Every key of the chain's last set (what the entities at its snapshot are), from the indexes only. */
export async function chainKeys(repo: BackupRepository, sealer: Sealer, chain: readonly Manifest[]): Promise<Set<string>> {
  const keys = new Set<string>()
  for (const [i, m] of chain.entries()) {
    const index = await readIndex(repo, sealer, m)
    if (i > 0) dropRemoved(keys, index)
    for (const key of index.keys) keys.add(key)
  }
  return keys
}

function dropRemoved(keys: Set<string>, index: SetIndex): void {
  if (index.resets.length > 0) {
    const resets = new Set(index.resets)
    for (const key of keys) if (resets.has(namespaceOf(key))) keys.delete(key)
  }
  for (const key of index.removed) keys.delete(key)
}

// ---- walking a chain ----------------------------------------------------------------------

/** One record of an entity in a set of the chain. */
interface ChainRecord {
  /** Position of the set in the chain. */
  readonly set: number
  readonly chunk: number
  readonly kind: number
  readonly meta: Uint8Array
  readonly state: Uint8Array
}

/** A one-key look-ahead over the records of one set, within a key range, loading chunks as needed. */
class SetCursor {
  readonly manifest: Manifest
  readonly index: SetIndex
  readonly resets: ReadonlySet<string>
  readonly removed: ReadonlySet<string>
  readonly #set: number
  readonly #repo: BackupRepository
  readonly #sealer: Sealer
  readonly #starts: number[]
  readonly #end: number
  readonly #wanted: ((key: string) => boolean) | undefined
  #pos: number
  #chunk = -1
  #records: ChunkRecords | undefined

  readonly #recorded: Map<string, { digest: Uint8Array; diffs: number }> | undefined

  constructor(
    repo: BackupRepository,
    sealer: Sealer,
    set: number,
    manifest: Manifest,
    index: SetIndex,
    scope: Scope,
    wanted?: (key: string) => boolean,
    recorded?: Map<string, { digest: Uint8Array; diffs: number }>,
  ) {
    this.#recorded = recorded
    this.#repo = repo
    this.#sealer = sealer
    this.#set = set
    this.manifest = manifest
    this.index = index
    this.resets = new Set(index.resets)
    this.removed = new Set(index.removed)
    this.#wanted = wanted
    this.#starts = []
    let at = 0
    for (const c of manifest.chunks) {
      this.#starts.push(at)
      at += c.records
    }
    const [from, to] = scopeRange(scope)
    this.#pos = from === undefined ? 0 : lowerBound(index.keys, from)
    this.#end = to === undefined ? index.keys.length : lowerBound(index.keys, to)
    this.#skip()
  }

  /** The next key of this set in range, or undefined. */
  get head(): string | undefined {
    return this.#pos < this.#end ? this.index.keys[this.#pos] : undefined
  }

  /** The record at the head; moves past it. */
  async take(): Promise<ChainRecord> {
    const pos = this.#pos
    const chunk = upperBoundNum(this.#starts, pos) - 1
    if (chunk !== this.#chunk || !this.#records) {
      const records = await readChunk(this.#repo, this.#sealer, this.manifest, chunk)
      if (records.diffDigest) this.#recorded?.set(`${this.#set}/${chunk}`, { digest: records.diffDigest, diffs: records.kinds.filter((k) => k === RECORD_DIFF).length })
      this.#records = records
      this.#chunk = chunk
    }
    const i = pos - (this.#starts[chunk] as number)
    const records = this.#records
    this.#pos++
    this.#skip()
    return { set: this.#set, chunk, kind: records.kinds[i] as number, meta: records.metas[i] as Uint8Array, state: records.states[i] as Uint8Array }
  }

  #skip(): void {
    const wanted = this.#wanted
    if (!wanted) return
    while (this.#pos < this.#end && !wanted(this.index.keys[this.#pos] as string)) this.#pos++
  }
}

/**
 * The records of each entity of the chain (within `scope`, and for which `wanted` holds), in key
 * order: for each key, the records of the sets in chain order; those before `live` were dropped
 * by a later set that reset the namespace or removed the entity (all of them: the entity is not in
 * the chain's last set). One chunk per set is in memory at a time.
 */
async function* walk(
  repo: BackupRepository,
  sealer: Sealer,
  chain: readonly Manifest[],
  scope: Scope,
  wanted?: (key: string) => boolean,
  recorded?: Map<string, { digest: Uint8Array; diffs: number }>,
): AsyncGenerator<{ key: string; records: ChainRecord[]; live: number }> {
  const cursors: SetCursor[] = []
  for (const [i, m] of chain.entries()) cursors.push(new SetCursor(repo, sealer, i, m, await readIndex(repo, sealer, m), scope, wanted, recorded))
  for (;;) {
    let key: string | undefined
    for (const c of cursors) {
      const h = c.head
      if (h !== undefined && (key === undefined || compareKeys(h, key) < 0)) key = h
    }
    if (key === undefined) return
    const ns = namespaceOf(key)
    const records: ChainRecord[] = []
    let live = 0
    for (const [i, c] of cursors.entries()) {
      if (i > 0 && (c.resets.has(ns) || c.removed.has(key))) live = records.length
      if (c.head === key) records.push(await c.take())
    }
    yield { key, records, live }
  }
}

/**
 * Checks diff records as a walk meets them: each diff rebuilt at its set (the records before it
 * merged) goes into its chunk's {@link DiffDigest}; {@link finish} compares each chunk's with the
 * one recorded at backup time.
 */
class DiffChecker {
  readonly #chain: readonly Manifest[]
  readonly #computed = new Map<string, DiffDigest>()
  #checked = 0

  constructor(chain: readonly Manifest[]) {
    this.#chain = chain
  }

  get checked(): number {
    return this.#checked
  }

  /** Rebuilds and digests every diff among `records` (resets at `live`); `last` is the final document when already built. */
  check(key: string, records: readonly ChainRecord[], live: number, last?: { doc: Y.Doc; meta: EntityMeta }): void {
    let state: Uint8Array | undefined
    records.forEach((r, i) => {
      if (i === live) state = undefined
      if (r.kind === RECORD_FULL) {
        state = r.state
        return
      }
      const m = this.#chain[r.set] as Manifest
      const object = (m.chunks[r.chunk] as { name: string }).name
      let digest: Uint8Array
      try {
        state = state === undefined ? r.state : Y.mergeUpdates([state, r.state])
        if (i === records.length - 1 && last) digest = docDigest(last.meta.vv, last.meta.deleted, last.doc)
        else {
          const meta = parseMeta(r.meta)
          digest = docDigest(meta.vv, meta.deleted, createEntityDoc(state))
        }
      } catch (cause) {
        throw corrupt(m.id, object, `${key.replace('\u0000', '/')} does not rebuild from its chain`, cause)
      }
      const slot = `${r.set}/${r.chunk}`
      let acc = this.#computed.get(slot)
      if (!acc) this.#computed.set(slot, (acc = new DiffDigest()))
      acc.add(key, digest)
      this.#checked++
    })
  }

  /** Throws BACKUP_CORRUPT naming the first chunk whose entities do not rebuild to what was recorded. */
  finish(recorded: ReadonlyMap<string, { digest: Uint8Array; diffs: number }>): void {
    for (const [slot, want] of recorded) {
      const got = this.#computed.get(slot)
      if (got && got.count === want.diffs && Buffer.compare(got.digest(), want.digest) === 0) continue
      const [i, n] = slot.split('/').map(Number) as [number, number]
      const m = this.#chain[i] as Manifest
      const name = (m.chunks[n] as { name: string }).name
      throw corrupt(m.id, name, 'its entities do not rebuild to the state recorded at backup time')
    }
    for (const slot of this.#computed.keys()) if (!recorded.has(slot)) throw new Error(`diff records of ${slot} without a recorded digest`)
  }
}

/**
 * The entities of the chain's last set in `scope`, in key order: an entity whose last record is
 * whole comes back as stored; one with diffs after its last whole record (or diffs only: created
 * since) is merged (`Y.mergeUpdates`), loaded in a document, its record and texts read from it.
 *
 * Unscoped, this reads every object of the chain and checks it as {@link verifyEntityChain} does
 * (SHA-256, decryption, structure, every diff rebuilt against its chunk's digest, the entity
 * count): a consumer that keeps nothing of a walk that throws has restored from a verified chain
 * in one pass. A scoped walk checks what it reads; verify the chain first.
 */
export async function* materializeEntities(repo: BackupRepository, sealer: Sealer, chain: readonly Manifest[], scope: Scope = {}): AsyncGenerator<RestoredEntity> {
  const target = chain.at(-1) as Manifest
  const whole = scope.ns === undefined
  const checker = whole ? new DiffChecker(chain) : undefined
  const recorded = new Map<string, { digest: Uint8Array; diffs: number }>()
  let count = 0
  for await (const { key, records, live } of walk(repo, sealer, chain, scope, undefined, whole ? recorded : undefined)) {
    if (live === records.length) {
      checker?.check(key, records, live)
      continue
    }
    const sep = key.indexOf('\u0000')
    const ns = key.slice(0, sep)
    const id = key.slice(sep + 1)
    let lastFull = live - 1
    for (let i = records.length - 1; i >= live; i--) {
      if ((records[i] as ChainRecord).kind === RECORD_FULL) {
        lastFull = i
        break
      }
    }
    const last = records.at(-1) as ChainRecord
    let entity: RestoredEntity
    try {
      if (lastFull === records.length - 1) {
        entity = { ns, id, meta: parseMeta(last.meta), metaBytes: last.meta, state: last.state }
        checker?.check(key, records, live)
      } else {
        const parts = records.slice(Math.max(live, lastFull)).map((r) => r.state)
        const doc = createEntityDoc(parts.length === 1 ? parts[0] : Y.mergeUpdates(parts))
        const meta = completeMeta(parseMeta(last.meta), doc)
        checker?.check(key, records, live, { doc, meta })
        entity = { ns, id, meta, state: Y.encodeStateAsUpdate(doc), doc }
      }
    } catch (cause) {
      if (!(cause instanceof CodecError)) throw cause
      const m = chain[last.set] as Manifest
      throw corrupt(m.id, (m.chunks[last.chunk] as { name: string }).name, `${ns}/${id}: ${cause.message}`, cause)
    }
    count++
    yield entity
  }
  if (checker) {
    checker.finish(recorded)
    if (count !== target.entities) throw corrupt(target.id, target.index.name, `the chain holds ${count} entities, the manifest ${target.entities}`)
  }
}

// ---- verify -------------------------------------------------------------------------------

/**
 * Reads back every object of a set and of its chain: size, SHA-256, decryption, decompression,
 * the structure of the index and of every chunk; then rebuilds every diff record of the chain
 * from the records before it and checks each chunk's entities against the digest taken at backup
 * time. `deep` also parses every record's meta and Yjs state.
 */
export async function verifyEntityChain(
  repo: BackupRepository,
  sealer: Sealer,
  manifest: Manifest,
  options: { deep?: boolean; onProgress?: (p: { set: string; object: string; done: number; total: number }) => void } = {},
): Promise<VerifyResult> {
  const chain = await chainOf(repo, manifest)
  const problems: VerifyProblem[] = []
  let objects = 0
  let records = 0
  let bytes = 0
  const total = chain.reduce((n, m) => n + m.chunks.length + 1, 0)
  const report = (m: Manifest, object: string, error: unknown): void => {
    if (!(error instanceof BackupError) || error.code !== 'BACKUP_CORRUPT') throw error
    problems.push({ set: error.set ?? m.id, object: error.object ?? object, code: error.code, message: error.message })
  }
  // The keys of every diff record of the chain, and the digest each chunk holding some recorded.
  const diffKeys = new Set<string>()
  const recorded = new Map<string, { digest: Uint8Array; diffs: number }>()
  for (const [s, m] of chain.entries()) {
    let index: SetIndex | undefined
    try {
      index = await readIndex(repo, sealer, m)
    } catch (error) {
      report(m, m.index.name, error)
    }
    objects++
    bytes += m.index.size
    options.onProgress?.({ set: m.id, object: m.index.name, done: objects, total })
    let start = 0
    for (let n = 0; n < m.chunks.length; n++) {
      const ref = m.chunks[n] as (typeof m.chunks)[number]
      try {
        const chunk = await readChunk(repo, sealer, m, n)
        records += chunk.metas.length
        if (options.deep) deepCheck(m, ref.name, chunk)
        if (chunk.diffDigest && index) {
          let diffs = 0
          chunk.kinds.forEach((kind, i) => {
            if (kind !== RECORD_DIFF) return
            diffKeys.add((index as SetIndex).keys[start + i] as string)
            diffs++
          })
          recorded.set(`${s}/${n}`, { digest: chunk.diffDigest, diffs })
        }
      } catch (error) {
        report(m, ref.name, error)
      }
      start += ref.records
      objects++
      bytes += ref.size
      options.onProgress?.({ set: m.id, object: ref.name, done: objects, total })
    }
  }
  let diffs = 0
  if (problems.length === 0 && recorded.size > 0) {
    try {
      diffs = await checkDiffs(repo, sealer, chain, diffKeys, recorded)
    } catch (error) {
      report(manifest, manifest.index.name, error)
    }
  }
  return { id: manifest.id, ok: problems.length === 0, chain: chain.map((m) => m.id), objects, records, diffs, bytes, problems }
}

function deepCheck(m: Manifest, object: string, chunk: ChunkRecords): void {
  for (let i = 0; i < chunk.metas.length; i++) {
    try {
      parseMeta(chunk.metas[i] as Uint8Array)
      const state = chunk.states[i] as Uint8Array
      if (state.length > 0) Y.decodeUpdate(state)
    } catch (cause) {
      throw corrupt(m.id, object, `record ${i} does not decode`, cause)
    }
  }
}

/** Rebuilds every diff of the entities of `keys` and checks each chunk's digest; resolves with the diffs checked. */
async function checkDiffs(
  repo: BackupRepository,
  sealer: Sealer,
  chain: readonly Manifest[],
  keys: ReadonlySet<string>,
  recorded: ReadonlyMap<string, { digest: Uint8Array; diffs: number }>,
): Promise<number> {
  const checker = new DiffChecker(chain)
  for await (const { key, records, live } of walk(repo, sealer, chain, {}, (k) => keys.has(k))) checker.check(key, records, live)
  checker.finish(recorded)
  return checker.checked
}

/** First index whose number is > `n`. */
function upperBoundNum(xs: readonly number[], n: number): number {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((xs[mid] as number) <= n) lo = mid + 1
    else hi = mid
  }
  return lo
}
