import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { type ChangeRecord } from '../../../crdt/index.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore, type CommittedChange } from '../../../daemon/store/entity-store.ts'

const logger = pino({ level: 'silent' })
const stores: EntityStore[] = []
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
})

async function open(nodeId: string, options = {}): Promise<EntityStore> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId, logger }, options)
  await store.open()
  stores.push(store)
  return store
}

describe('store queue: replication next to a burst of local writes', () => {
  it('remote changes are never refused as OVERLOADED and commit ahead of queued local writes', async () => {
    const remote = await open('rrrr')
    await remote.write([{ op: 'put', ns: 'ns', id: 'from-peer', value: { v: 1 } }])
    const records: ChangeRecord[] = []
    for await (const c of remote.changeLog('rrrr', 0)) records.push(c)

    const store = await open('llll', { maxQueuedOps: 8, maxGroupOps: 2 })
    const order: string[] = []
    store.on('commit', (batch: readonly CommittedChange[]) => {
      for (const c of batch) order.push(c.change.id)
    })
    const local = Array.from({ length: 20 }, (_, i) => store.write([{ op: 'put', ns: 'ns', id: `l${i}`, value: { i } }]))
    // The local queue is full: some local writes are refused; the remote change is not.
    const applied = store.applyRemote(records)
    const outcomes = await Promise.allSettled(local)
    const refused = outcomes.filter((o) => o.status === 'rejected')
    expect(refused.length).toBeGreaterThan(0)
    for (const o of refused) expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'OVERLOADED' })
    expect((await applied).applied).toBe(1)
    // It went out in the next group, not after the queued local writes.
    expect(order.indexOf('from-peer')).toBeLessThan(4)
    expect(order).toHaveLength(20 - refused.length + 1)
    expect((await store.get('ns', 'from-peer')).value).toEqual({ v: 1 })
  })
})
