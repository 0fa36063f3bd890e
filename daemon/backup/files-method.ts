/**
 * The files method (docs/backup-format.md, files set): a full that holds the node's LevelDB files
 * as of one moment; no incremental or differential is taken against it. A whole set is restored
 * into a new data dir as the files it holds (create-files.ts, files-read.ts).
 */
import { createFilesBackup } from './create-files.ts'
import { BackupError } from './errors.ts'
import type { Manifest } from './format.ts'
import { materializeFiles, restoreFiles, verifyFilesSet } from './files-read.ts'
import type { BackupMethod } from './method.ts'

export const filesMethod: BackupMethod = {
  name: 'files',
  defaultType: 'full',
  checkType: (type) => {
    if (type !== 'full') throw new BackupError('FILES_BACKUP_FULL_ONLY', 'a files backup is a full: take it with type full')
  },
  create: (repo, source, _type, options) => createFilesBackup(repo, source, options),
  // A files set has no parent: its chain is itself.
  read: (repo, sealer, chain, scope) => materializeFiles(repo, sealer, chain.at(-1) as Manifest, scope),
  verify: (repo, sealer, manifest, options) => verifyFilesSet(repo, sealer, manifest, options),
  restoreWhole: (repo, sealer, manifest, into, init) => restoreFiles(repo, sealer, manifest, into, init),
  kindOf: () => 'full files',
}
