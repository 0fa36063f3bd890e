import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { VersionVector } from '../../../crdt/index.ts'
import { ACK_PERIODS_PER_GRACE, TombstoneCollector } from '../../../daemon/replication/tombstone-gc.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { decodeFrame, encodeFrame, FRAME_HELLO, SYNC_PROTOCOL_VERSION, type GcHello } from '../../../transport/index.ts'
import { replicate } from '../../helpers/store-replication.ts'

/**
 * The tombstone-GC part of a sync HELLO (docs/tombstone-gc.md): a peer gets each member's
 * observation once per ack period, and again only when a newer period's one appears, so an idle
 * cluster's HELLOs carry no payload per member; purges still happen, only when they are safe.
 */

const logger = pino({ level: 'silent' })
const GRACE = 24_000
const PERIOD = GRACE / ACK_PERIODS_PER_GRACE
const SKEW = 100
const stores: EntityStore[] = []
// Mid-period, so that a few steps of 100 ms stay in one ack period.
let now = 1_000_000 * PERIOD + PERIOD / 2
const clock = (): number => now

beforeEach(() => {
  now = (Math.floor(now / PERIOD) + 2) * PERIOD + PERIOD / 2
})
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
})

async function node(nodeId: string): Promise<EntityStore> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId, logger }, { now: clock, tombstoneGraceMs: GRACE })
  await store.open()
  stores.push(store)
  return store
}

function collector(store: EntityStore, known: readonly string[]): TombstoneCollector {
  return new TombstoneCollector(store, () => known, logger, { clockSkewMs: SKEW, now: clock })
}

const peerIdOf = (nodeId: string): string => `12D3KooW${nodeId}`
const members = (h: GcHello): string[] => h.acks.map((a) => a.nodeId).sort()

/** What a session that succeeds does to both collectors (as runSyncSession and the scheduler do). */
async function session(x: EntityStore, y: EntityStore, gx: TombstoneCollector, gy: TombstoneCollector): Promise<[GcHello, GcHello]> {
  const hx = gx.helloFor({ peerId: peerIdOf(y.nodeId), nodeId: y.nodeId })
  const hy = gy.helloFor({ peerId: peerIdOf(x.nodeId), nodeId: x.nodeId })
  gx.fromHello(y.nodeId, y.versionVector, hy, peerIdOf(y.nodeId))
  gy.fromHello(x.nodeId, x.versionVector, hx, peerIdOf(x.nodeId))
  await replicate(x, y)
  await replicate(y, x)
  gx.observe(y.nodeId, y.versionVector)
  gy.observe(x.nodeId, x.versionVector)
  gx.delivered(peerIdOf(y.nodeId), hx)
  gy.delivered(peerIdOf(x.nodeId), hy)
  return [hx, hy]
}

describe('the GC part of HELLO carries what the peer may lack', () => {
  it('the first HELLO to a peer carries every member but the two sides; after it reached the peer, only news', async () => {
    const a = await node('aaaa')
    const gc = collector(a, [])
    const vv: VersionVector = { aaaa: 1 }
    for (const m of ['m1', 'm2', 'm3', 'm4', 'm5']) gc.observe(`${m}${m}`, vv)
    const p = { peerId: peerIdOf('m1m1'), nodeId: 'm1m1' }
    const first = gc.helloFor(p)
    expect(members(first)).toEqual(['m2m2', 'm3m3', 'm4m4', 'm5m5'])
    // Not delivered (the session failed): the next HELLO carries them again.
    expect(members(gc.helloFor(p))).toEqual(members(first))
    gc.delivered(p.peerId, first)
    expect(gc.helloFor(p).acks).toEqual([])

    // Seen again within the same period: nothing new for the peer. A new member: just that one.
    now += 100
    gc.observe('m2m2', { aaaa: 2 })
    gc.observe('m6m6', vv)
    const second = gc.helloFor(p)
    expect(members(second)).toEqual(['m6m6'])
    gc.delivered(p.peerId, second)

    // What the peer reported itself is not sent back to it; another peer gets it.
    gc.fromHello('m1m1', vv, { acks: [{ nodeId: 'm7m7', vv, at: now }], horizon: {} }, p.peerId)
    expect(gc.helloFor(p).acks).toEqual([])
    expect(members(gc.helloFor({ peerId: peerIdOf('m2m2'), nodeId: 'm2m2' }))).toContain('m7m7')

    // The next period starts afresh (a peer that lost its observations unseen gets them again);
    // within it, an observation from it replaces one from the period before.
    now += PERIOD
    const third = gc.helloFor(p)
    expect(members(third)).toEqual(['m2m2', 'm3m3', 'm4m4', 'm5m5', 'm6m6', 'm7m7'])
    gc.delivered(p.peerId, third)
    now += 100
    gc.observe('m3m3', vv)
    expect(members(gc.helloFor(p))).toEqual(['m3m3'])

    // A peer that disconnected may come back without them: all again.
    gc.forgetPeer(p.peerId)
    expect(members(gc.helloFor(p))).toEqual(['m2m2', 'm3m3', 'm4m4', 'm5m5', 'm6m6', 'm7m7'])
  })

  it('a line A-B-C still collects: A purges only once B has passed on an observation of C from after the grace period', async () => {
    const [a, b, c] = [await node('aaaa'), await node('bbbb'), await node('cccc')]
    const [gcA, gcB, gcC] = [collector(a, ['bbbb']), collector(b, ['aaaa', 'cccc']), collector(c, ['bbbb'])]
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    await session(a, b, gcA, gcB)
    await session(b, c, gcB, gcC)
    await session(a, b, gcA, gcB)
    expect(gcA.members()).toContain('cccc')
    now += GRACE + SKEW
    // A new period: B sends again what it has of C, an observation from before the grace ended.
    const [, fromB] = await session(a, b, gcA, gcB)
    expect(members(fromB)).toEqual(['cccc'])
    expect(await gcA.sweep()).toBe(0)
    // B sees C again: an observation of this period, which A does not hold: passed on at once.
    await session(b, c, gcB, gcC)
    const [, news] = await session(a, b, gcA, gcB)
    expect(members(news)).toEqual(['cccc'])
    expect(await gcA.sweep()).toBe(1)
    expect(await gcB.sweep()).toBe(1)
    // Idle: B sees C again within the period; A holds an observation of this period: nothing goes.
    await session(b, c, gcB, gcC)
    const [, idle] = await session(a, b, gcA, gcB)
    expect(idle.acks).toEqual([])
    // C learns of A only through B too.
    await session(b, c, gcB, gcC)
    expect(await gcC.sweep()).toBe(1)
  })

  it('a peer that restarted unseen (no disconnect) purges nothing until, one ack period on, it has every observation again', async () => {
    const [a, b, c] = [await node('aaaa'), await node('bbbb'), await node('cccc')]
    const [gcA, gcC] = [collector(a, ['bbbb', 'cccc']), collector(c, ['aaaa'])]
    let gcB = collector(b, ['aaaa'])
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    await session(a, c, gcA, gcC)
    await session(a, b, gcA, gcB)
    now += GRACE + SKEW
    await session(a, c, gcA, gcC)
    await session(a, b, gcA, gcB)
    expect(gcB.members()).toContain('cccc')

    // B restarts (forgetting every observation), and A does not notice: A sends it only news, so
    // B does not know C exists, and must not purge without it.
    gcB = collector(b, ['aaaa'])
    now += 100
    await session(a, b, gcA, gcB)
    expect(gcB.members()).toEqual(['aaaa'])
    expect(await gcB.sweep()).toBe(0)
    // The next period, A sends it everything again: it knows C, and purges.
    now += PERIOD
    await session(a, c, gcA, gcC)
    await session(a, b, gcA, gcB)
    expect(gcB.members()).toContain('cccc')
    expect(await gcB.sweep()).toBe(1)

    // Seen disconnecting, a peer gets everything at its first session back.
    gcA.forgetPeer(peerIdOf('bbbb'))
    now += 100
    const [toB] = await session(a, b, gcA, gcB)
    expect(members(toB)).toEqual(['cccc'])
  })
})

describe('HELLO size', () => {
  it('an idle cluster: the GC part no longer grows with the members (figures logged)', async () => {
    const figures: string[] = []
    const sizes: Record<number, { full: number; first: number; idle: number }> = {}
    for (const n of [3, 16, 48]) {
      const ids = Array.from({ length: n }, (_, i) => i.toString(16).padStart(16, '0'))
      // As in a cluster where one node writes: every vector has one origin.
      const vv: VersionVector = { [ids[0]!]: 1234 }
      const self = await node(ids[0]!)
      const gc = collector(self, ids.slice(1))
      for (const m of ids.slice(1)) gc.observe(m, vv)
      const bytes = (h: GcHello): number => {
        const frame = { type: FRAME_HELLO, version: SYNC_PROTOCOL_VERSION, nodeId: ids[0]!, vv, gc: h } as const
        const encoded = encodeFrame(frame)
        // The HELLO format is unchanged: the decoder 1.x nodes run reads it as it is.
        expect(decodeFrame(encoded)).toEqual(frame)
        return encoded.length
      }
      const peer = { peerId: peerIdOf(ids[1]!), nodeId: ids[1]! }
      const full = bytes(gc.hello())
      const firstHello = gc.helloFor(peer)
      const first = bytes(firstHello)
      gc.delivered(peer.peerId, firstHello)
      // Until the next session with that peer, the node syncs with 3 others (seeing them again).
      now += 100
      for (const m of ids.slice(2, 5)) gc.observe(m, vv)
      const idle = bytes(gc.helloFor(peer))
      sizes[n] = { full, first, idle }
      figures.push(`${n} members: every member ${full} B, first HELLO to a peer in a period ${first} B, then ${idle} B`)
    }
    console.log(`HELLO bytes (GC part included):\n${figures.join('\n')}`)
    expect(sizes[48]!.full).toBeGreaterThan(10 * sizes[3]!.full)
    expect(sizes[3]!.idle).toBe(sizes[48]!.idle)
    expect(sizes[48]!.idle).toBeLessThan(sizes[3]!.full)
  })
})
