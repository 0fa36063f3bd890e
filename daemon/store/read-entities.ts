import type { KvReader } from '../storage/kv-store.ts'
import { decodeMeta, type EntityMeta } from './entity-meta.ts'
import { entityMetaRange, entityStateKey, parseEntityMetaKey } from './keys.ts'
import { readStates } from './state-parts.ts'
import type { StoredEntity } from './types.ts'

export async function* readEntities(reader: KvReader, ns: string | undefined): AsyncGenerator<StoredEntity> {
  const range = ns === undefined ? { gte: 'e\u0000', lt: 'e\u0001' } : entityMetaRange(ns)
  let batch: { ns: string; id: string; meta: EntityMeta }[] = []
  const flush = async function* (): AsyncGenerator<StoredEntity> {
    const bases = await reader.getMany(batch.map((e) => entityStateKey(e.ns, e.id)))
    const { metas, states } = await readStates(
      reader,
      batch.map((e, i) => ({ ...e, base: bases[i] })),
    )
    for (let i = 0; i < batch.length; i++) {
      const { ns, id } = batch[i] as { ns: string; id: string }
      const meta = metas[i]
      if (meta !== undefined) yield { ns, id, meta, state: states[i] ?? new Uint8Array(0) }
    }
    batch = []
  }
  for await (const [key, value] of reader.iterate(range)) {
    batch.push({ ...parseEntityMetaKey(key), meta: decodeMeta(value) })
    if (batch.length >= 256) yield* flush()
  }
  if (batch.length > 0) yield* flush()
}
