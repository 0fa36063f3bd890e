import { pino } from 'pino'
import * as Y from 'yjs'
import type { BackupSource } from '../../daemon/backup/create.ts'
import { LevelKvStore } from '../../daemon/storage/level-kv-store.ts'
import { EntityStore, type LocalOp, type StoredEntity } from '../../daemon/store/entity-store.ts'
import { dataDirLayout } from '../../daemon/data-dir.ts'

/** A small seeded PRNG (mulberry32): the same seed, the same run. */
export { prng as seededRandom } from '../unit/crdt/arbitraries.ts'

export const quietLogger = pino({ level: process.env.MESHSYNC_TEST_LOG ?? 'silent' })


/** What an entity is, independent of how its state is encoded. */
export interface EntityState {
  value: unknown
  deleted: boolean
  vv: Record<string, number>
  sv: string
  texts: Record<string, string>
}

/** Every entity (deleted ones too) of a store or snapshot, by `ns/id`. */
export async function stateOf(entities: AsyncIterable<StoredEntity>): Promise<Record<string, EntityState>> {
  const out: Record<string, EntityState> = {}
  for await (const e of entities) {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, e.state)
    const texts: Record<string, string> = {}
    for (const name of [...doc.share.keys()].filter((n) => n !== 'data').sort()) texts[name] = doc.getText(name).toString()
    out[`${e.ns}/${e.id}`] = {
      value: sortKeys(doc.getMap('data').toJSON()),
      deleted: e.meta.deleted,
      vv: { ...e.meta.vv },
      sv: Buffer.from(Y.encodeStateVector(doc)).toString('base64'),
      texts,
    }
  }
  return out
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]))
  }
  return value
}

/**
 * A backup source over `store` that also records, from the very snapshot the backup reads, the
 * state it must restore to (`captured`, in snapshot order).
 */
export function capturingSource(store: EntityStore): BackupSource & { captured: { state: Record<string, EntityState>; vv: Record<string, number> }[] } {
  const captured: { state: Record<string, EntityState>; vv: Record<string, number> }[] = []
  return {
    nodeId: store.nodeId,
    captured,
    openSnapshot: async () => {
      const s = await store.openSnapshot()
      captured.push({ state: await stateOf(s.entities()), vv: { ...s.vv } })
      return s
    },
  }
}

/** One seeded random local write over a small key space (puts, patches, texts, deletes). */
export function randomOp(rng: () => number, namespaces: readonly string[], ids: number): LocalOp {
  const ns = namespaces[Math.floor(rng() * namespaces.length)] as string
  const id = `e${Math.floor(rng() * ids)}`
  const r = rng()
  if (r < 0.35) return { op: 'put', ns, id, value: { n: Math.floor(rng() * 1000), tag: `t${Math.floor(rng() * 5)}`, nested: { a: [1, rng() > 0.5] } } }
  if (r < 0.6) return { op: 'patch', ns, id, value: { p: Math.floor(rng() * 100), ...(rng() < 0.3 && { tag: null }) } }
  if (r < 0.85) return { op: 'text', ns, id, name: 'body', splices: [[0, 0, `w${Math.floor(rng() * 100)} `]] }
  return { op: 'delete', ns, id }
}

/** Applies `n` random writes; a refused one (delete of a missing entity) is skipped. */
export async function randomWrites(store: EntityStore, rng: () => number, n: number, namespaces: readonly string[] = ['items', 'notes'], ids = 40): Promise<void> {
  for (let i = 0; i < n; i++) {
    try {
      await store.write([randomOp(rng, namespaces, ids)])
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENTITY_NOT_FOUND') throw error
    }
  }
}

/** Opens the store of a restored data dir, reads its state, closes it. */
export async function restoredState(dataDir: string): Promise<{ state: Record<string, EntityState>; vv: Record<string, number> }> {
  const store = new EntityStore({ kv: new LevelKvStore(dataDirLayout(dataDir).db), nodeId: '0000000000000000', logger: quietLogger })
  await store.open()
  try {
    return { state: await stateOf(store.entities()), vv: { ...store.versionVector } }
  } finally {
    await store.close()
  }
}
