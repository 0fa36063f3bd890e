/**
 * How a set holds the node's data (docs/backups.md, docs/backup-format.md): its backup method.
 * Each method takes its sets, reads the entities back from them, verifies them and, where it
 * has a faster way than loading entity by entity, restores a whole set into a new data dir.
 * The two methods are in entities-method.ts and files-method.ts; methods.ts names them.
 */
import type { InitResult } from '../data-dir.ts'
import type { FilesSource } from './create-files.ts'
import type { BackupSource, WriteOptions } from './create.ts'
import type { BackupType, Manifest } from './format.ts'
import type { RestoreDirResult, RestoredEntity, Scope, VerifyResult } from './read-types.ts'
import type { BackupRepository } from './repository.ts'
import type { Sealer } from './seal.ts'

/** The methods by name, as the API, the CLI and the config name them (format.ts `method`; absent: entities). */
export type BackupMethodName = 'entities' | 'files'

/** What verify reports as it goes. */
export type VerifyProgress = (p: { set: string; object: string; done: number; total: number }) => void

/** What a backup reads of the node: its store (EntityStore satisfies it). */
export type MethodSource = BackupSource & FilesSource

/** One way of holding the node's data in a set. */
export interface BackupMethod {
  readonly name: BackupMethodName
  /** The type a backup of this method takes when none is given (the CLI's default). */
  readonly defaultType: BackupType
  /** Throws when this method takes no backup of `type` (before anything is queued or written). */
  checkType(type: BackupType): void
  /** Takes a set of `source` into `repo` under the repository's exclusive lock; resolves with its manifest. */
  create(repo: BackupRepository, source: MethodSource, type: BackupType, options: WriteOptions): Promise<Manifest>
  /**
   * The entities of the chain's last set (a set of this method) in `scope`, in key order.
   * Unscoped, everything read is checked and the entities must number what the manifest says.
   */
  read(repo: BackupRepository, sealer: Sealer, chain: readonly Manifest[], scope: Scope): AsyncGenerator<RestoredEntity>
  /** Reads back every object of the set and its chain; `deep` also parses every entity. */
  verify(repo: BackupRepository, sealer: Sealer, manifest: Manifest, options: { deep?: boolean; onProgress?: VerifyProgress }): Promise<VerifyResult>
  /**
   * Restores a whole set into the new data dir `into` (`init` makes the data dir's identity),
   * where the method has a faster way than loading its entities; absent, a restore loads them.
   */
  readonly restoreWhole?: (repo: BackupRepository, sealer: Sealer, manifest: Manifest, into: string, init: () => Promise<InitResult>) => Promise<RestoreDirResult>
  /** How `backup list` names the kind of a set of this method. */
  kindOf(set: { readonly type: BackupType; readonly synthetic: boolean }): string
}
