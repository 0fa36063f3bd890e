import type { VersionVector } from './version-vector.ts'

/** What a change does to its entity. */
export type ChangeOp = 'upsert' | 'delete'

/**
 * One change to one entity, as made by its origin node. A change is identified by its dot
 * `(origin, seq)`: `seq` counts the origin's changes across all entities, from 1, without gaps.
 * `context` is the entity's version vector the change was made on, so two changes are
 * concurrent exactly when neither context includes the other's dot.
 */
export interface ChangeRecord {
  /** Node id of the writer. */
  readonly origin: string
  /** Per-origin sequence number (1, 2, 3, ... with no gaps). */
  readonly seq: number
  readonly ns: string
  readonly id: string
  readonly op: ChangeOp
  /** Entity version vector before the change (its causal context). */
  readonly context: VersionVector
  /** Top-level fields of the record that the change set or removed (sorted, unique). */
  readonly fields: readonly string[]
  /** Names of the Y.Text roots the change edited (sorted, unique). */
  readonly texts: readonly string[]
  /** The Yjs update (V1 encoding) the change applied; empty for a delete. */
  readonly update: Uint8Array
  /** Origin's wall clock in ms when the change was made. Informational; never orders anything. */
  readonly time: number
  /**
   * The change starts a new incarnation of a deleted entity: its update was made on an empty
   * document, not on the tombstone's Yjs state, so it does not depend on items that tombstone
   * garbage collection may have purged (docs/tombstone-gc.md). Only upserts carry it.
   */
  readonly fresh?: true
}

/** The identity of a change: its origin and per-origin sequence number. */
export interface Dot {
  readonly origin: string
  readonly seq: number
}
