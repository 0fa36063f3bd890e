import type { ChangeRecord } from '../../crdt/index.ts'
import type { EntityStore } from '../../daemon/store/entity-store.ts'

/**
 * Hands every change `from` has and `to` lacks to `to`, as replication would: per origin, in log
 * order, round after round until nothing stays deferred. Throws when a round applies nothing
 * while changes still wait (their predecessors are on neither store).
 */
export async function replicate(from: EntityStore, to: EntityStore): Promise<void> {
  for (;;) {
    let deferred = 0
    let applied = 0
    for (const origin of Object.keys(from.versionVector)) {
      const changes: ChangeRecord[] = []
      for await (const c of from.changeLog(origin, to.versionVector[origin] ?? 0)) changes.push(c)
      if (changes.length === 0) continue
      const result = await to.applyRemote(changes)
      deferred += result.deferred.length
      applied += result.applied
    }
    if (deferred === 0) return
    if (applied === 0) throw new Error('changes stayed deferred')
  }
}
