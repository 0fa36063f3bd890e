/**
 * Snapshot backups of a node's merged state (docs/backups.md, docs/backup-format.md): repositories
 * (directory, S3), the set format, create / verify / restore / synthesize / prune, the repository
 * lock, and the service the daemon runs.
 */
export * from './errors.ts'
export * from './repository.ts'
export { DirRepository } from './dir-repository.ts'
export { S3Repository, type S3Target } from './s3-repository.ts'
export { openRepository, type OpenRepositoryOptions } from './target.ts'
export { openSealer, DEFAULT_KDF, type KdfParams, type RepositoryConfig } from './seal.ts'
export { acquireLock, withLock, breakStale, readLocks, isStale, type LockInfo, type LockMode, type LockOptions, type RepositoryLock } from './lock.ts'
export { BACKUP_FORMAT, entityDigest, type BackupType, type Manifest, type SetIndex } from './format.ts'
export { createBackup, type BackupSource, type Progress, type WriteOptions } from './create.ts'
export { verifyChain, materialize, backupMethod, methodOf, BACKUP_METHODS, DEFAULT_METHOD, type BackupMethod, type BackupMethodName } from './methods.ts'
export { listManifests, loadManifest, resolveSetId, chainOf, type RestoredEntity, type Scope, type VerifyResult, type VerifyProblem } from './read.ts'
export { restoreIntoDir, restoreIntoLive, forwardOps, spliceBetween, type RestoreScope, type RestoreDirResult, type RestoreLiveResult } from './restore.ts'
export { synthesizeFull, prune, selectRetained, verifyBackup, type RetentionPolicy, type PruneResult } from './maintain.ts'
export { BackupService, summarize, type BackupSettings, type BackupSchedule, type BackupStatus, type BackupSummary } from './service.ts'
