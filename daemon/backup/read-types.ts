/** What reading a chain and restoring a set give back (entities-read.ts, files-read.ts, restore.ts). */
import type * as Y from 'yjs'
import type { EntityMeta } from '../store/entity-meta.ts'

/** Which entities a restore or walk covers. */
export interface Scope {
  readonly ns?: string | undefined
  /** One entity (needs `ns`). */
  readonly id?: string | undefined
  /** Only ids starting with this (needs `ns`). */
  readonly prefix?: string | undefined
  /** Only ids after this one, in key order (needs `ns`). */
  readonly after?: string | undefined
}

/** An entity as a set restores it: its meta, its Yjs state, and the document when one was built. */
export interface RestoredEntity {
  readonly ns: string
  readonly id: string
  readonly meta: EntityMeta
  /** The meta exactly as the node stored it (when the entity's last record is whole). */
  readonly metaBytes?: Uint8Array
  readonly state: Uint8Array
  /** Its document, when rebuilding it needed one (diffs merged). */
  readonly doc?: Y.Doc
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
  /** Diff records rebuilt from their chain and checked against the digests taken at backup time. */
  readonly diffs: number
  readonly bytes: number
  readonly problems: readonly VerifyProblem[]
}

/** What a restore into a new data dir did. */
export interface RestoreDirResult {
  readonly backup: string
  readonly into: string
  readonly nodeId: string
  readonly entities: number
  readonly deleted: number
}
