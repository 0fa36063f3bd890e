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

describe('store: what readers see of a commit in flight', () => {
  it('the vector, feed position and counts move only once the batch is durable, together', async () => {
    const kv = new MemoryKvStore()
    const held: (() => void)[] = []
    let hold = false
    const batch = kv.batch.bind(kv)
    kv.batch = async (ops, options) => {
      if (hold) await new Promise<void>((resolve) => held.push(resolve))
      return batch(ops, options)
    }
    const store = new EntityStore({ kv, nodeId: 'aaaa', logger }, {})
    await store.open()
    stores.push(store)
    await store.write([{ op: 'put', ns: 'ns', id: 'a', value: { v: 1 } }])
    hold = true
    const writing = store.write([{ op: 'put', ns: 'ns', id: 'b', value: { v: 2 } }])
    while (held.length === 0) await new Promise((r) => setTimeout(r, 1))
    // The batch is written but not durable yet: nothing of it shows.
    const seen = { vv: store.versionVector, counts: store.entityCounts, cursor: store.feedCursor }
    hold = false
    for (const release of held.splice(0)) release()
    await writing
    expect(seen).toEqual({ vv: { aaaa: 1 }, counts: { ns: 1 }, cursor: 1 })
    const cursor = seen.cursor
    expect(store.versionVector).toEqual({ aaaa: 2 })
    expect(store.entityCounts).toEqual({ ns: 2 })
    expect(store.feedCursor).toBe(cursor + 1)
  })
})
