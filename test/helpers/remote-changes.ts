import { pino } from 'pino'
import type { ChangeRecord } from '../../crdt/index.ts'
import { MemoryKvStore } from '../../daemon/storage/index.ts'
import { EntityStore } from '../../daemon/store/entity-store.ts'

/** Changes 1..n of another origin (`bbbb` unless named), each a put of its own entity `r/e<i>`. */
export async function remoteChanges(n: number, origin = 'bbbb'): Promise<ChangeRecord[]> {
  const other = new EntityStore({ kv: new MemoryKvStore(), nodeId: origin, logger: pino({ level: 'silent' }) })
  await other.open()
  for (let i = 1; i <= n; i++) await other.write([{ op: 'put', ns: 'r', id: `e${i}`, value: { i } }])
  const out: ChangeRecord[] = []
  for await (const c of other.changeLog(origin, 0)) out.push(c)
  await other.close()
  return out
}
