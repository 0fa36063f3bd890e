/**
 * The backup methods by name, and what reads any set through its own method: the entities of a
 * chain, and verify.
 */
import { entitiesMethod } from './entities-method.ts'
import { filesMethod } from './files-method.ts'
import type { Manifest } from './format.ts'
import type { BackupMethod, BackupMethodName, VerifyProgress } from './method.ts'
import type { RestoredEntity, Scope, VerifyResult } from './read-types.ts'
import type { BackupRepository } from './repository.ts'
import type { Sealer } from './seal.ts'

export type { BackupMethod, BackupMethodName } from './method.ts'

export const BACKUP_METHODS: Readonly<Record<BackupMethodName, BackupMethod>> = { entities: entitiesMethod, files: filesMethod }

/** The method of a backup that names none. */
export const DEFAULT_METHOD: BackupMethodName = 'entities'

export function backupMethod(name: BackupMethodName): BackupMethod {
  return BACKUP_METHODS[name]
}

/** The method a set was taken with (a manifest without `method` holds entity records). */
export function methodOf(m: Manifest): BackupMethod {
  return BACKUP_METHODS[m.method ?? DEFAULT_METHOD]
}

/**
 * The entities of the chain's last set in `scope`, in key order, read by its method. Unscoped,
 * everything read is checked as verify checks it, and the entities must number what the
 * manifest says: a consumer that keeps nothing of a walk that throws has restored from a
 * verified chain in one pass. A scoped walk checks what it reads; verify the chain first.
 */
export async function* materialize(repo: BackupRepository, sealer: Sealer, chain: readonly Manifest[], scope: Scope = {}): AsyncGenerator<RestoredEntity> {
  yield* methodOf(chain.at(-1) as Manifest).read(repo, sealer, chain, scope)
}

/** Reads back every object of a set and of its chain, by its method; `deep` also parses every entity. */
export async function verifyChain(repo: BackupRepository, sealer: Sealer, manifest: Manifest, options: { deep?: boolean; onProgress?: VerifyProgress } = {}): Promise<VerifyResult> {
  return methodOf(manifest).verify(repo, sealer, manifest, options)
}
