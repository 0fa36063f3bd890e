import { compareKeys } from '../storage/key-order.ts'
import { encodeMeta } from '../store/entity-meta.ts'
import type { WriteOptions } from './create.ts'
import { BackupError } from './errors.ts'
import { RECORD_FULL, type Manifest } from './format.ts'
import { acquireLock, breakStale, withLock } from './lock.ts'
import { materialize, verifyChain } from './methods.ts'
import { assertVerified, bySnapshot, chainOf, listManifests, type VerifyResult } from './read.ts'
import type { BackupRepository } from './repository.ts'
import { openSealer } from './seal.ts'
import { SetBuilder } from './set-writer.ts'

/**
 * A synthetic full: merges a set's chain (`Y.mergeUpdates` per entity) into a new full set,
 * offline, without the node. It holds exactly the entities of the set it was made from, with its
 * version vector and feed position, so later incrementals of the node diff against it and older
 * chains can be pruned.
 */
export async function synthesizeFull(repo: BackupRepository, manifest: Manifest, options: WriteOptions = {}): Promise<Manifest> {
  const now = options.now ?? Date.now
  const lock = await acquireLock(repo, { owner: 'backup synthesize', mode: 'exclusive', now, ...(options.logger && { logger: options.logger }), ...options.lock })
  try {
    const { sealer } = await openSealer(repo, { passphrase: options.passphrase })
    const chain = await chainOf(repo, manifest) // materialize checks what it reads; a failure aborts the new set
    const builder = await SetBuilder.begin(repo, sealer, { now, ...(options.chunkBytes !== undefined && { chunkBytes: options.chunkBytes }) })
    try {
      const namespaces: Record<string, { live: number; deleted: number }> = {}
      let entities = 0
      for await (const e of materialize(repo, sealer, chain)) {
        builder.add(`${e.ns}\u0000${e.id}`, RECORD_FULL, e.metaBytes ?? encodeMeta(e.meta), e.state)
        const counts = (namespaces[e.ns] ??= { live: 0, deleted: 0 })
        if (e.meta.deleted) counts.deleted++
        else counts.live++
        entities++
        if (builder.wantsFlush) await builder.flush()
        if (entities % 10_000 === 0) options.onProgress?.({ phase: 'synthesize', done: entities, total: manifest.entities })
      }
      const sorted = Object.fromEntries(Object.keys(namespaces).sort(compareKeys).map((ns) => [ns, namespaces[ns] as { live: number; deleted: number }]))
      return await builder.publish(
        { type: 'full', parent: null, base: null, node: manifest.node, vv: manifest.vv, feedSeq: manifest.feedSeq, snapshotAt: manifest.snapshotAt, synthetic: { from: chain.map((m) => m.id) } },
        { namespaces: sorted, entities },
      )
    } catch (error) {
      await builder.abort()
      throw error
    }
  } finally {
    await lock.release()
  }
}

/**
 * `backup verify`: under a shared lock (a concurrent prune waits or is refused, so no set of the
 * chain disappears while it is read), reads back every object of the set's chain, rebuilds every
 * diff and parses every record ({@link verifyChain} `deep`). BACKUP_CORRUPT names the first bad
 * object.
 */
export async function verifyBackup(
  repo: BackupRepository,
  manifest: Manifest,
  options: Pick<WriteOptions, 'passphrase' | 'now' | 'lock' | 'logger'> & { onProgress?: (p: { done: number; total: number }) => void } = {},
): Promise<VerifyResult> {
  const now = options.now ?? Date.now
  return withLock(repo, { owner: `backup verify ${manifest.id}`, mode: 'shared', now, ...(options.logger && { logger: options.logger }), ...options.lock }, async () => {
    const { sealer } = await openSealer(repo, { passphrase: options.passphrase })
    const result = await verifyChain(repo, sealer, manifest, { deep: true, ...(options.onProgress && { onProgress: options.onProgress }) })
    assertVerified(result)
    return result
  })
}

/** How many sets to keep (restic's `forget --keep-*`); absent: 0. Buckets are UTC. */
export interface RetentionPolicy {
  readonly last?: number
  readonly hourly?: number
  readonly daily?: number
  readonly weekly?: number
  readonly monthly?: number
}

/** Which sets a policy keeps, and why; per node, newest first. */
export function selectRetained(sets: readonly Manifest[], policy: RetentionPolicy): { keep: Map<string, string[]>; remove: Manifest[] } {
  const keep = new Map<string, string[]>()
  const reason = (id: string, why: string): void => {
    keep.set(id, [...(keep.get(id) ?? []), why])
  }
  const byId = new Map(sets.map((m) => [m.id, m]))
  const nodes = new Set(sets.map((m) => m.node))
  for (const node of nodes) {
    const newest = sets.filter((m) => m.node === node).sort((a, b) => bySnapshot(b, a))
    newest.slice(0, policy.last ?? 0).forEach((m) => reason(m.id, 'last'))
    const buckets: [keyof RetentionPolicy, (d: Date) => string][] = [
      ['hourly', (d) => d.toISOString().slice(0, 13)],
      ['daily', (d) => d.toISOString().slice(0, 10)],
      ['weekly', isoWeek],
      ['monthly', (d) => d.toISOString().slice(0, 7)],
    ]
    for (const [name, bucketOf] of buckets) {
      const n = policy[name] ?? 0
      const seen = new Set<string>()
      for (const m of newest) {
        if (seen.size >= n) break
        const bucket = bucketOf(new Date(m.snapshotAt))
        if (seen.has(bucket)) continue
        seen.add(bucket)
        reason(m.id, name)
      }
    }
  }
  // A kept incremental or differential needs its whole chain.
  for (const id of [...keep.keys()]) {
    let m = byId.get(id)
    while (m && m.type !== 'full' && m.parent !== null) {
      const parent = byId.get(m.parent)
      if (!parent) break
      if (!keep.has(parent.id)) reason(parent.id, `chain of ${id}`)
      m = parent
    }
  }
  return { keep, remove: sets.filter((m) => !keep.has(m.id)) }
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()))
  const day = t.getUTCDay() || 7
  t.setUTCDate(t.getUTCDate() + 4 - day)
  const year = t.getUTCFullYear()
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7)
  return `${year}-W${String(week).padStart(2, '0')}`
}

/** What prune did (or would do, with `dryRun`). */
export interface PruneResult {
  readonly kept: { readonly id: string; readonly reasons: readonly string[] }[]
  readonly removed: readonly string[]
  readonly debris: number
  readonly staleLocks: number
  readonly dryRun: boolean
}

/**
 * Applies a retention policy under the exclusive lock: removes every set the policy does not
 * keep (dependents before what they depend on), the debris of crashed writers and stale locks.
 * An empty policy is refused (it would remove everything).
 */
export async function prune(repo: BackupRepository, policy: RetentionPolicy, options: WriteOptions & { dryRun?: boolean } = {}): Promise<PruneResult> {
  if (!Object.values(policy).some((n) => typeof n === 'number' && n > 0)) {
    throw new BackupError('INVALID_TARGET', 'a retention policy needs at least one --keep-* greater than 0')
  }
  const now = options.now ?? Date.now
  const staleLocks = (await breakStale(repo, now, options.lock?.staleAfterMs ?? 5 * 60_000, options.logger)).length
  const lock = await acquireLock(repo, { owner: 'backup prune', mode: 'exclusive', now, ...(options.logger && { logger: options.logger }), ...options.lock })
  try {
    const { sets } = await listManifests(repo)
    const { keep, remove } = selectRetained(sets, policy)
    const doomed = [...remove].sort((a, b) => bySnapshot(b, a))
    let debris = 0
    if (!options.dryRun) {
      for (const m of doomed) await repo.deleteSet(m.id)
      debris = await repo.removeDebris()
    }
    // Sanity: every kept set still has its chain.
    if (!options.dryRun) for (const id of keep.keys()) await chainOf(repo, sets.find((m) => m.id === id) as Manifest)
    return {
      kept: [...keep].map(([id, reasons]) => ({ id, reasons })),
      removed: doomed.map((m) => m.id),
      debris,
      staleLocks,
      dryRun: options.dryRun === true,
    }
  } finally {
    await lock.release()
  }
}
