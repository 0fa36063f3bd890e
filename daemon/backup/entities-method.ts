/**
 * The entities method (docs/backup-format.md, "What a set holds"): a set holds entity records,
 * whole or as diffs against its parent, so a node's sets form chains of fulls, incrementals and
 * differentials (create.ts, entities-read.ts).
 */
import { createBackup } from './create.ts'
import { materializeEntities, verifyEntityChain } from './entities-read.ts'
import type { BackupMethod } from './method.ts'

export const entitiesMethod: BackupMethod = {
  name: 'entities',
  defaultType: 'incremental',
  checkType: () => undefined,
  create: (repo, source, type, options) => createBackup(repo, source, type, options),
  read: (repo, sealer, chain, scope) => materializeEntities(repo, sealer, chain, scope),
  verify: (repo, sealer, manifest, options) => verifyEntityChain(repo, sealer, manifest, options),
  kindOf: (set) => (set.synthetic ? 'full*' : set.type),
}
