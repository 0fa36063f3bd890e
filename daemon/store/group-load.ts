import type * as Y from 'yjs'
import { createEntityDoc } from '../../crdt/index.ts'
import type { KvStore } from '../storage/kv-store.ts'
import type { EntityDocs } from './doc-cache.ts'
import { decodeMeta, type EntityMeta } from './entity-meta.ts'
import { entityMetaKey, entityStateKey } from './keys.ts'
import { jobEntities, WorkingEntity, type Job } from './jobs.ts'
import { readStates } from './state-parts.ts'

/**
 * Most keys the committer reads on the event loop's thread for a group's entities: the group is
 * applied on this thread right after anyway, and a worker thread's round trip costs about 30 us of
 * CPU (a missing key costs under 1 us on this thread, a cached one a few).
 */
const COMMIT_SYNC_READ_MAX_KEYS = 64

/** Where a group's entities are loaded from. */
export interface GroupSource {
  readonly kv: KvStore
  readonly docs: EntityDocs
  /** The Yjs clientID a document opened now edits with. */
  readonly clientId: () => number
}

/**
 * Loads the entities a group touches into `working`: their committed meta, and their document
 * from the cache or their stored state (built into a document only when a job needs it).
 */
export async function loadGroup(from: GroupSource, group: readonly Job[], working: Map<string, WorkingEntity>): Promise<void> {
  const wanted = new Map<string, { ns: string; id: string }>()
  for (const job of group) {
    for (const { ns, id } of jobEntities(job)) wanted.set(entityMetaKey(ns, id), { ns, id })
  }
  // The state of an entity whose document is cached is not read: the document is its state (a
  // large text's state can be hundreds of KB, read and copied for nothing on every commit).
  const entities = [...wanted].map(([key, { ns, id }]) => ({ key, ns, id, readState: !from.docs.has(key) }))
  const keys = entities.flatMap(({ ns, id, readState }) => (readState ? [entityMetaKey(ns, id), entityStateKey(ns, id)] : [entityMetaKey(ns, id)]))
  // None of these entities is in the batch being written (the committer waits for it when one
  // is), so that batch landing during the read changes nothing it reads: on this thread even
  // then, which saves a worker thread's round trip per group.
  const values = (keys.length <= COMMIT_SYNC_READ_MAX_KEYS ? from.kv.getManyNow(keys) : undefined) ?? (await from.kv.getMany(keys))
  const metas = new Map<string, EntityMeta | undefined>()
  const bases = new Map<string, Uint8Array | undefined>()
  // The cached documents as of the reads (taken before any other await).
  const docs = new Map<string, Y.Doc | undefined>()
  let at = 0
  for (const { key, readState } of entities) {
    const metaBytes = values[at++]
    metas.set(key, metaBytes ? decodeMeta(metaBytes) : undefined)
    if (readState) bases.set(key, values[at++])
    docs.set(key, from.docs.get(key))
  }
  // A document evicted from the cache while the reads ran: its state is read now.
  const evicted = entities.filter(({ key, readState }) => !readState && docs.get(key) === undefined)
  if (evicted.length > 0) {
    const late = await from.kv.getMany(evicted.map(({ ns, id }) => entityStateKey(ns, id)))
    evicted.forEach(({ key }, i) => bases.set(key, late[i]))
  }
  // The deltas stored after the bases read (none of these entities is being committed now).
  const reads = entities.filter(({ key }) => docs.get(key) === undefined)
  const { states } = await readStates(
    from.kv,
    reads.map(({ key, ns, id }) => ({ ns, id, meta: metas.get(key), base: bases.get(key) })),
  )
  const stateOf = new Map(reads.map(({ key }, i) => [key, states[i]]))
  for (const { key, ns, id } of entities) {
    const committed = metas.get(key)
    const open = (state: Uint8Array | undefined): Y.Doc => {
      const doc = createEntityDoc(state, from.clientId())
      from.docs.set(key, doc)
      return doc
    }
    working.set(key, new WorkingEntity(ns, id, committed, { doc: docs.get(key), state: stateOf.get(key) }, open))
    from.docs.loading(key)
  }
}
