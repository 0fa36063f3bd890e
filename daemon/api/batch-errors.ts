import { assertEntityId, assertNamespace, assertRecord, MeshsyncError } from '../../crdt/index.ts'
import type { LocalOp } from '../store/entity-store.ts'
import { assertRecordLimits } from '../store/record-limits.ts'

/**
 * A batch refused because of one of its ops: the store's error, with the op's index in its
 * message (`ops[9000]: ...`) and in the error body's `index` (docs/api.md, Batches).
 */
export class BatchOpError extends MeshsyncError {
  readonly index: number

  constructor(index: number, error: MeshsyncError) {
    super(error.code, `ops[${index}]: ${error.message}`, { cause: error })
    this.name = 'BatchOpError'
    this.index = index
  }
}

/**
 * Which op of `ops` the store refused the batch for, or undefined when the error is not about
 * one op. The store checks a batch whole and names no index; on a refusal the ops are checked
 * again one by one with the same checks (only on the error path, so a good batch pays nothing),
 * and an error that names an entity or a namespace is matched to the first op on it.
 */
export function failedOpIndex(ops: readonly LocalOp[], error: MeshsyncError): number | undefined {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as LocalOp
    try {
      assertNamespace(op.ns)
      assertEntityId(op.id)
      if (op.op === 'put' || op.op === 'patch' || op.op === 'resolve') {
        assertRecordLimits(op.value)
        assertRecord(op.value)
      }
    } catch (refused) {
      if (refused instanceof MeshsyncError && refused.code === error.code) return i
    }
  }
  if (error.code === 'READ_ONLY_NAMESPACE') {
    const i = ops.findIndex((op) => error.message.startsWith(`namespace ${op.ns} `))
    if (i >= 0) return i
  }
  const i = ops.findIndex((op) => error.message.includes(`${op.ns}/${op.id} `) || error.message.includes(`${op.ns}/${op.id}:`))
  return i >= 0 ? i : undefined
}
