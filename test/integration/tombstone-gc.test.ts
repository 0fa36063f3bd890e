import { cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ACK_PERIODS_PER_GRACE } from '../../daemon/replication/tombstone-gc.ts'
import { LevelKvStore } from '../../daemon/storage/index.ts'
import type { LocalOp } from '../../daemon/store/entity-store.ts'
import { generateIdentityKey } from '../../transport/index.ts'
import { newClusterKey, startMeshNode, type MeshNode, type MeshNodeOptions } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const GRACE = 1000
const SKEW = 100
let nodes: MeshNode[] = []
const dirs: string[] = []
afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop()))
  nodes = []
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

async function start(options: MeshNodeOptions): Promise<MeshNode> {
  const node = await startMeshNode({
    ...options,
    store: { tombstoneGraceMs: GRACE },
    replicator: { gcIntervalMs: 0, gcClockSkewMs: SKEW },
  })
  nodes.push(node)
  return node
}

async function levelDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshsync-gc-'))
  dirs.push(dir)
  return dir
}

const same = (a: MeshNode, b: MeshNode): boolean => JSON.stringify(a.store.versionVector) === JSON.stringify(b.store.versionVector)

/** Sessions between every connected pair, so each node observes the others now. */
async function syncAll(group: MeshNode[]): Promise<void> {
  for (const n of group) for (const other of n.transport.connectedPeers()) n.replicator.syncWith(other)
  await Promise.all(group.map((n) => n.replicator.idle()))
}

/** Live entities of `ns` with what converged replicas must agree on. */
async function live(node: MeshNode, ns: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for await (const e of node.store.entities({ ns })) if (!e.meta.deleted) out[e.id] = { value: e.meta.value, vv: e.meta.vv }
  return out
}

async function isGone(node: MeshNode, ns: string, id: string): Promise<boolean> {
  return (await node.store.entityState(ns, id)) === undefined
}

describe('tombstone GC over real nodes', () => {
  it('purges on every node once all have the deletes; a node that was down during the purge rejoins without bringing anything back', async () => {
    const key = newClusterKey()
    const cDir = await levelDir()
    const cKey = await generateIdentityKey()
    const a = await start({ clusterKey: key })
    const b = await start({ clusterKey: key })
    let c = await start({ clusterKey: key, identityKey: cKey, kv: new LevelKvStore(join(cDir, 'db')) })
    const ops: LocalOp[] = []
    for (let i = 0; i < 50; i++) ops.push({ op: 'put', ns: 'items', id: `e${i}`, value: { i } })
    await a.store.write(ops)
    await b.transport.dial(a.addr())
    await c.transport.dial(a.addr())
    await c.transport.dial(b.addr())
    await waitFor(() => same(a, b) && same(a, c), { timeout: 20_000 })
    await b.store.write(Array.from({ length: 20 }, (_, i) => ({ op: 'delete', ns: 'items', id: `e${i}` }) as const))
    await waitFor(() => same(a, b) && same(a, c), { timeout: 20_000 })

    expect(await a.replicator.collectTombstones()).toBe(0) // grace period not over
    await new Promise((r) => setTimeout(r, GRACE + SKEW + 50))
    await syncAll([a, b, c])
    // C goes down having acknowledged the deletes; A and B purge without it being up.
    await c.stop()
    nodes = nodes.filter((n) => n !== c)
    expect(await a.replicator.collectTombstones()).toBe(20)
    expect(await b.replicator.collectTombstones()).toBe(20)
    for (const n of [a, b]) for (let i = 0; i < 20; i++) expect(await isGone(n, 'items', `e${i}`)).toBe(true)

    c = await start({ clusterKey: key, identityKey: cKey, kv: new LevelKvStore(join(cDir, 'db')) })
    await c.transport.dial(a.addr())
    await c.transport.dial(b.addr())
    // A node that starts purges only with HELLOs from one ack period on (docs/tombstone-gc.md).
    await new Promise((r) => setTimeout(r, GRACE / ACK_PERIODS_PER_GRACE))
    await syncAll([a, b, c])
    for (const n of [a, b]) for (let i = 0; i < 20; i++) expect(await isGone(n, 'items', `e${i}`)).toBe(true)
    await expect(c.store.get('items', 'e3')).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    expect(await c.replicator.collectTombstones()).toBe(20)
    expect(await live(b, 'items')).toEqual(await live(a, 'items'))
    expect(await live(c, 'items')).toEqual(await live(a, 'items'))
    expect(Object.keys(await live(a, 'items'))).toHaveLength(30)

    // Writing a purged id again creates it anew, everywhere.
    await c.store.write([{ op: 'put', ns: 'items', id: 'e3', value: { again: true } }])
    await waitFor(() => same(a, c) && same(b, c), { timeout: 20_000 })
    for (const n of [a, b]) expect((await n.store.get('items', 'e3')).value).toEqual({ again: true })
  })

  it('a node holding state from before the purge is refused and reloads the namespace instead of spreading deleted entities', async () => {
    const key = newClusterKey()
    const a = await start({ clusterKey: key })
    const b = await start({ clusterKey: key })
    const cDir = await levelDir()
    const cKey = await generateIdentityKey()
    let c = await start({ clusterKey: key, identityKey: cKey, kv: new LevelKvStore(join(cDir, 'db')) })
    const ops: LocalOp[] = []
    for (let i = 0; i < 30; i++) ops.push({ op: 'put', ns: 'items', id: `e${i}`, value: { i } })
    await a.store.write(ops)
    await a.store.write([{ op: 'put', ns: 'other', id: 'kept', value: { ok: true } }])
    await b.transport.dial(a.addr())
    await c.transport.dial(a.addr())
    await waitFor(() => same(a, b) && same(a, c), { timeout: 20_000 })
    await Promise.all(nodes.map((n) => n.replicator.idle()))

    // An old copy of C's data: every entity still live.
    await c.stop()
    nodes = nodes.filter((n) => n !== c)
    const oldCopy = await levelDir()
    await cp(cDir, oldCopy, { recursive: true })
    c = await start({ clusterKey: key, identityKey: cKey, kv: new LevelKvStore(join(cDir, 'db')) })
    await c.transport.dial(a.addr())
    await c.transport.dial(b.addr())

    await a.store.write(Array.from({ length: 10 }, (_, i) => ({ op: 'delete', ns: 'items', id: `e${i}` }) as const))
    await waitFor(() => same(a, b) && same(a, c), { timeout: 20_000 })
    await new Promise((r) => setTimeout(r, GRACE + SKEW + 50))
    await syncAll([a, b, c])
    expect(await a.replicator.collectTombstones()).toBe(10)
    expect(await b.replicator.collectTombstones()).toBe(10)
    expect(await c.replicator.collectTombstones()).toBe(10)

    // D starts from the old copy under a new identity, and writes on a deleted entity first.
    const d = await start({ clusterKey: key, kv: new LevelKvStore(join(oldCopy, 'db')) })
    expect((await d.store.get('items', 'e1')).value).toEqual({ i: 1 })
    await d.store.write([{ op: 'patch', ns: 'items', id: 'e1', value: { zombie: true } }])
    await d.transport.dial(a.addr())
    await waitFor(() => d.replicator.stats.gcRebootstraps > 0, { timeout: 20_000 })
    expect(a.replicator.stats.gcHorizonRefusals).toBeGreaterThan(0)
    await d.transport.dial(b.addr())
    await waitFor(() => same(a, d) && same(b, d) && same(c, d), { timeout: 20_000 })
    await syncAll([a, b, c, d])

    for (const n of [a, b, c, d]) {
      for (let i = 0; i < 10; i++) expect(await isGone(n, 'items', `e${i}`)).toBe(true)
      expect(await live(n, 'items')).toEqual(await live(a, 'items'))
      expect((await n.store.get('other', 'kept')).value).toEqual({ ok: true })
    }
    expect(Object.keys(await live(a, 'items'))).toHaveLength(20)
    expect(a.store.gcStats.staleChanges).toBeGreaterThan(0)
  })
})
