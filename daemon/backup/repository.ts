/**
 * Where backup sets live: a directory or an S3 prefix behind one narrow interface. Keys are
 * relative, `/`-separated (`config.json`, `locks/<id>.json`, `sets/<id>/manifest.json`, ...).
 */

/** Cancellation for every call. */
export interface RepoCallOptions {
  readonly signal?: AbortSignal
}

/**
 * The objects of one backup set being written. Nothing of it is visible (listed by
 * {@link BackupRepository.listSets}) until {@link SetWriter.publish} has returned; a crash or
 * {@link SetWriter.abort} before that leaves nothing visible.
 */
export interface SetWriter {
  /** Stores one object of the set (durably, before it resolves). */
  put(name: string, bytes: Uint8Array, options?: RepoCallOptions): Promise<void>
  /** Makes the set visible: writes its manifest last, atomically. */
  publish(manifest: Uint8Array, options?: RepoCallOptions): Promise<void>
  /** Removes what was staged (best effort). */
  abort(): Promise<void>
}

/** A backup repository. */
export interface BackupRepository {
  /** Where it is, as a user names it (a path or `s3://bucket/prefix`). */
  readonly location: string
  /** An object's bytes, or undefined when it does not exist. */
  get(key: string, options?: RepoCallOptions): Promise<Uint8Array | undefined>
  /** Writes one object atomically and durably (readers see the old bytes or the new, never half). */
  put(key: string, bytes: Uint8Array, options?: RepoCallOptions): Promise<void>
  /** Keys of the visible objects under `prefix`, sorted. */
  list(prefix: string, options?: RepoCallOptions): Promise<string[]>
  /** Removes an object (no error when it is already gone). */
  delete(key: string, options?: RepoCallOptions): Promise<void>
  /** Ids of the published sets (those whose manifest is visible), sorted. */
  listSets(options?: RepoCallOptions): Promise<string[]>
  /** Starts writing a set. */
  beginSet(id: string, options?: RepoCallOptions): Promise<SetWriter>
  /** Removes a set: its manifest first (so it stops being visible), then the rest. */
  deleteSet(id: string, options?: RepoCallOptions): Promise<void>
  /** Removes what crashed writers left (staged, unpublished sets); resolves with how many. */
  removeDebris(options?: RepoCallOptions): Promise<number>
  /** Releases connections. */
  close(): Promise<void>
}

/** Key of a set's object. */
export function setKey(id: string, name: string): string {
  return `sets/${id}/${name}`
}

export const MANIFEST = 'manifest.json'
