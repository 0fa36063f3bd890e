/**
 * How an entity's Yjs state is stored: a base state (`y` key) and the Yjs updates committed after
 * it, one per commit ("deltas", `d` keys). The state is the base with its deltas applied in order.
 *
 * A small entity is written whole on every commit, as it always was. Once its base reaches
 * {@link DELTA_MIN_BASE_BYTES}, a commit that edited its document stores only the update that
 * commit made, until the entity has {@link MAX_DELTAS} deltas or deltas as large as the base; the
 * next commit then writes the base again from the document and drops the deltas (compaction).
 * A 100 KB text taking one small splice per commit thus writes a few hundred bytes per commit
 * instead of its whole state, and encodes the whole state once per {@link MAX_DELTAS} commits.
 *
 * A delta is numbered by the feed position of the commit that wrote it, which no later commit
 * reuses: a reader that read the meta and then finds a delta it names missing knows that a
 * compaction committed in between, and reads again ({@link readStates}). It never joins a base to
 * deltas of another moment.
 */
import * as Y from 'yjs'
import { StorageError } from '../storage/errors.ts'
import type { KvBatchOp, KvReader } from '../storage/kv-store.ts'
import { decodeMeta, type EntityMeta, type StateParts } from './entity-meta.ts'
import { entityDeltaKey, entityMetaKey, entityStateKey } from './keys.ts'
import type { DeltaLimits } from './types.ts'

/** Bases smaller than this are written whole on every commit. */
export const DELTA_MIN_BASE_BYTES = 4096
/** Most deltas an entity keeps before the next commit writes its base again. */
export const MAX_DELTAS = 256
export const DEFAULT_DELTA_LIMITS: DeltaLimits = { minBaseBytes: DELTA_MIN_BASE_BYTES, maxDeltas: MAX_DELTAS }

/** What a group did to an entity's document, for {@link stateWriteOps}. */
export interface StateChange {
  /** The Yjs updates applied in the group, in order; null when the state was replaced (written whole). */
  readonly updates: readonly Uint8Array[] | null
  /** The whole state as the group leaves it (encoded only when it is written). */
  readonly encodeWhole: () => Uint8Array
}

/** The delta keys an entity's meta names, oldest first. */
export function deltaKeysOf(ns: string, id: string, parts: StateParts | undefined): string[] {
  return (parts?.deltas ?? []).map((n) => entityDeltaKey(ns, id, n))
}

/** The base with the deltas applied (the base itself when there is no delta). */
export function joinState(base: Uint8Array | undefined, deltas: readonly Uint8Array[]): Uint8Array | undefined {
  const parts = deltas.filter((d) => d.length > 0)
  if (parts.length === 0) return base
  return Y.mergeUpdates(base !== undefined && base.length > 0 ? [base, ...parts] : parts)
}

/**
 * Appends to `ops` what stores the state a group left, and returns the entity's parts after it.
 * `before`: the parts of its committed meta (undefined: small, new, or stored whole by an older
 * version); `exists`: it has a committed state; `feedSeq`: the feed position of this commit of
 * the entity. Unchanged state: nothing written. Else one delta when the entity is large and its
 * deltas stay within bounds, else the whole state, dropping the deltas.
 */
export function stateWriteOps(
  ns: string,
  id: string,
  before: StateParts | undefined,
  exists: boolean,
  feedSeq: number,
  change: StateChange,
  ops: KvBatchOp[],
  limits: DeltaLimits = DEFAULT_DELTA_LIMITS,
): StateParts | undefined {
  const { updates } = change
  if (updates !== null && updates.length === 0 && exists) return before
  const deltas = before?.deltas ?? []
  if (updates !== null && updates.length > 0 && before !== undefined && before.base >= limits.minBaseBytes && deltas.length < limits.maxDeltas) {
    const delta = updates.length === 1 ? (updates[0] as Uint8Array) : Y.mergeUpdates(updates as Uint8Array[])
    const bytes = (before.bytes ?? 0) + delta.length
    if (bytes <= before.base) {
      ops.push({ type: 'put', key: entityDeltaKey(ns, id, feedSeq), value: delta })
      return { base: before.base, deltas: [...deltas, feedSeq], bytes }
    }
  }
  const whole = change.encodeWhole()
  ops.push({ type: 'put', key: entityStateKey(ns, id), value: whole })
  for (const key of deltaKeysOf(ns, id, before)) ops.push({ type: 'del', key })
  return whole.length >= limits.minBaseBytes ? { base: whole.length } : undefined
}

/** An entity whose state to read: its meta and base as read together. */
export interface StateRead {
  readonly ns: string
  readonly id: string
  readonly meta: EntityMeta | undefined
  readonly base: Uint8Array | undefined
}

/**
 * The states of entities whose meta and base were read (`read`): each base with the deltas its
 * meta names. When a delta is missing (a compaction committed after the meta was read), that
 * entity's meta and base are read again, until they agree. On a snapshot nothing moves. A delta
 * missing while the meta still names it is damage: `STORAGE_CORRUPT`, rather than a wrong state.
 */
export async function readStates(reader: KvReader, read: readonly StateRead[]): Promise<{ metas: (EntityMeta | undefined)[]; states: (Uint8Array | undefined)[] }> {
  const metas = read.map((r) => r.meta)
  const states = read.map((r) => r.base)
  const hasDeltas = (i: number): boolean => (metas[i]?.stateParts?.deltas?.length ?? 0) > 0
  let todo = read.flatMap((_, i) => (hasDeltas(i) ? [i] : []))
  while (todo.length > 0) {
    const keys = todo.map((i) => deltaKeysOf((read[i] as StateRead).ns, (read[i] as StateRead).id, metas[i]?.stateParts))
    const values = await reader.getMany(keys.flat())
    const again: number[] = []
    let at = 0
    todo.forEach((i, k) => {
      const n = (keys[k] as string[]).length
      const deltas = values.slice(at, at + n)
      at += n
      if (deltas.every((d) => d !== undefined)) states[i] = joinState(states[i], deltas as Uint8Array[])
      else again.push(i)
    })
    if (again.length === 0) break
    const fresh = await reader.getMany(again.flatMap((i) => [entityMetaKey((read[i] as StateRead).ns, (read[i] as StateRead).id), entityStateKey((read[i] as StateRead).ns, (read[i] as StateRead).id)]))
    again.forEach((i, k) => {
      const bytes = fresh[2 * k]
      const meta = bytes ? decodeMeta(bytes) : undefined
      // Still naming the same deltas: they are not gone by a rewrite since, they are missing.
      const named = (m: EntityMeta | undefined): string => JSON.stringify(m?.stateParts?.deltas ?? [])
      if (meta !== undefined && named(meta) === named(metas[i])) {
        const { ns, id } = read[i] as StateRead
        throw new StorageError('STORAGE_CORRUPT', `${ns}/${id}: a stored update its metadata names is missing`)
      }
      metas[i] = meta
      states[i] = fresh[2 * k + 1]
    })
    todo = again.filter(hasDeltas)
  }
  return { metas, states }
}
