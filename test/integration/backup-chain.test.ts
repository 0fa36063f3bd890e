import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackup, type WriteOptions } from '../../daemon/backup/create.ts'
import type { Manifest } from '../../daemon/backup/format.ts'
import { synthesizeFull } from '../../daemon/backup/maintain.ts'
import { readIndex } from '../../daemon/backup/entities-read.ts'
import { verifyChain } from '../../daemon/backup/methods.ts'
import { listManifests } from '../../daemon/backup/read.ts'
import type { BackupRepository } from '../../daemon/backup/repository.ts'
import { restoreIntoDir } from '../../daemon/backup/restore.ts'
import { openSealer } from '../../daemon/backup/seal.ts'
import type { EntitySnapshot } from '../../crdt/index.ts'
import { LevelKvStore } from '../../daemon/storage/level-kv-store.ts'
import { MemoryKvStore } from '../../daemon/storage/memory-kv-store.ts'
import { EntityStore } from '../../daemon/store/entity-store.ts'
import { capturingSource, quietLogger, randomWrites, restoredState, seededRandom, type EntityState } from '../helpers/backup.ts'
import { repositoryKinds } from '../helpers/s3.ts'
import { replicate } from '../helpers/store-replication.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

const tempDir = useTempDirs('all')
const NODE = 'a1b2c3d4e5f60718'
const kinds = repositoryKinds('chain')

const PEER = 'b1b2c3d4e5f60718'
const THIRD = 'c1b2c3d4e5f60718'

async function memoryStore(nodeId: string): Promise<EntityStore> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId, logger: quietLogger })
  await store.open()
  return store
}


async function openStore(): Promise<EntityStore> {
  const dir = await tempDir('meshsync-store-')
  // Small delta limits: most entities keep deltas after their base (state-parts.ts), which every
  // backup reader must join.
  const store = new EntityStore({ kv: new LevelKvStore(join(dir, 'db')), nodeId: NODE, logger: quietLogger }, { stateDeltas: { minBaseBytes: 64, maxDeltas: 3 } })
  await store.open()
  return store
}

const opts: WriteOptions = { chunkBytes: 2048 }

describe.each(kinds)('backup chain on a %s repository', (_kind, makeRepo) => {
  let repo: BackupRepository
  let store: EntityStore
  const sets: Manifest[] = []
  const expected: { state: Record<string, EntityState>; vv: Record<string, number> }[] = []

  beforeAll(async () => {
    repo = await makeRepo()
    store = await openStore()
    const rng = seededRandom(42)
    const source = capturingSource(store)
    await randomWrites(store, rng, 200)
    // Ids whose UTF-8 order differs from JS string order (U+FFDA sorts before an astral character
    // in UTF-8, after it in UTF-16): restore merges the sets' records in the store's key order.
    const odd = ['\uffda', '\u{1F600}', 'é', 'z']
    await store.write(odd.map((id) => ({ op: 'put' as const, ns: 'items', id, value: { v: 0 } })))
    const touchOdd = (v: number, ids: string[]) => store.write(ids.map((id) => ({ op: 'patch' as const, ns: 'items', id, value: { v } })))
    // Each backup is taken while writes go on.
    const during = async (type: 'full' | 'incremental' | 'differential', writes: number): Promise<void> => {
      const [m] = await Promise.all([createBackup(repo, source, type, opts), randomWrites(store, rng, writes)])
      sets.push(m)
    }
    // A peer whose changes (to the node's entities and its own) reach the node by replication.
    const peer = await memoryStore(PEER)
    await during('full', 40)
    await touchOdd(1, ['\u{1F600}', 'z'])
    await randomWrites(store, rng, 60)
    await replicate(store, peer)
    await randomWrites(peer, rng, 40, ['items'])
    await peer.write([{ op: 'text', ns: 'items', id: 'e1', name: 'body', splices: [[0, 0, 'from the peer ']] }])
    await replicate(peer, store)
    await during('incremental', 40)
    await randomWrites(store, rng, 30)
    await store.wipeNamespace('notes') // these entities disappear from the node
    await randomWrites(store, rng, 30, ['items', 'notes'], 10)
    await replicate(store, peer)
    await randomWrites(peer, rng, 20, ['items'])
    await replicate(peer, store)
    await during('incremental', 40)
    await touchOdd(2, ['\uffda'])
    await randomWrites(store, rng, 50)
    await during('differential', 40)
    expected.push(...source.captured)
    await peer.close()
  })

  afterAll(async () => {
    await store?.close()
    await repo?.close()
  })

  it('links the chain: full <- incremental <- incremental, full <- differential', async () => {
    const [full, i1, i2, diff] = sets as [Manifest, Manifest, Manifest, Manifest]
    expect(sets.map((m) => m.type)).toEqual(['full', 'incremental', 'incremental', 'differential'])
    expect([full.parent, i1.parent, i2.parent, diff.parent]).toEqual([null, full.id, i1.id, full.id])
    expect([i1.base, i2.base, diff.base]).toEqual([full.id, full.id, full.id])
    // Diffs store only what changed, as Yjs diffs where the change log accounts for the change.
    // The first incremental holds one record per entity that differs between the two snapshots
    // (how many of the writes running during the full land before its snapshot is timing).
    const [at0, at1] = expected as [(typeof expected)[number], (typeof expected)[number]]
    const ids = new Set([...Object.keys(at0.state), ...Object.keys(at1.state)])
    const changed = [...ids].filter((id) => JSON.stringify(at0.state[id]) !== JSON.stringify(at1.state[id])).length
    expect(i1.records).toBeLessThanOrEqual(changed)
    expect(i1.records).toBeLessThan(i1.entities)
    expect(i1.diffs).toBeGreaterThan(0)
    expect(i2.diffs).toBeGreaterThan(0)
    // The wiped namespace is reset in the second incremental.
    const { sealer } = await openSealer(repo, {})
    expect((await readIndex(repo, sealer, i2)).resets).toEqual(['notes'])
    expect(diff.diffs).toBeGreaterThan(0)
  })

  it('restores every set to exactly the state of its snapshot, deletions and removals included', async () => {
    expect(expected).toHaveLength(4)
    const { sealer } = await openSealer(repo, {})
    let sawDeleted = false
    for (const [i, m] of sets.entries()) {
      const into = join(await tempDir('meshsync-restore-'), 'node')
      const result = await restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })
      const restored = await restoredState(into)
      const want = expected[i] as (typeof expected)[number]
      expect(restored.state).toEqual(want.state)
      expect(restored.vv).toEqual(want.vv)
      expect(result.entities).toBe(Object.keys(want.state).length)
      if (Object.values(want.state).some((e) => e.deleted)) sawDeleted = true
    }
    expect(sawDeleted).toBe(true)
    // The wipe between the first and second incremental removed notes that the first one held.
    const notes = (s: Record<string, EntityState>): string[] => Object.keys(s).filter((k) => k.startsWith('notes/'))
    const before = notes((expected[1] as (typeof expected)[number]).state)
    const after = notes((expected[2] as (typeof expected)[number]).state)
    expect(before.some((k) => !after.includes(k))).toBe(true)
  })

  it('a synthetic full of a chain equals a live full taken at the same point', async () => {
    const source = capturingSource(store)
    const inc = await createBackup(repo, source, 'incremental', opts)
    const live = await createBackup(repo, source, 'full', opts)
    const synthetic = await synthesizeFull(repo, inc, opts)
    expect(inc).toMatchObject({ type: 'incremental', parent: sets[3]?.id })
    expect(synthetic).toMatchObject({ type: 'full', parent: null, synthetic: { from: [sets[0]?.id, sets[3]?.id, inc.id] } })
    expect(synthetic.entities).toBe(live.entities)
    expect(synthetic.namespaces).toEqual(live.namespaces)
    expect(synthetic.vv).toEqual(live.vv)
    expect(synthetic.feedSeq).toBe(live.feedSeq)
    const { sealer } = await openSealer(repo, {})
    const restore = async (m: Manifest): Promise<Awaited<ReturnType<typeof restoredState>>> => {
      const into = join(await tempDir('meshsync-restore-'), 'node')
      await restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })
      return restoredState(into)
    }
    const fromSynthetic = await restore(synthetic)
    expect(fromSynthetic.state).toEqual(source.captured[1]?.state)
    expect(fromSynthetic).toEqual(await restore(live))
  })

  it('one flipped byte in any chunk: verify names it, restore refuses and writes nothing', async () => {
    const { sealer } = await openSealer(repo, {})
    const target = sets[2] as Manifest // second incremental: its chain is full, i1, i2
    const chain = [sets[0], sets[1], sets[2]] as Manifest[]
    const objects = chain.flatMap((m) => [...m.chunks.map((c) => c.name), m.index.name].map((name) => ({ set: m.id, name })))
    expect(objects.length).toBeGreaterThan(3)
    const rng = seededRandom(7)
    for (const { set, name } of objects) {
      const key = `sets/${set}/${name}`
      const original = (await repo.get(key)) as Uint8Array
      const flipped = Uint8Array.from(original)
      const at = Math.floor(rng() * flipped.length)
      flipped[at] = (flipped[at] as number) ^ 0x01
      await repo.put(key, flipped)
      try {
        const result = await verifyChain(repo, sealer, target)
        expect(result.ok).toBe(false)
        expect(result.problems).toEqual([expect.objectContaining({ set, object: name, code: 'BACKUP_CORRUPT' })])
        const into = join(await tempDir('meshsync-restore-'), 'node')
        await expect(restoreIntoDir(repo, sealer, target, into, { logger: quietLogger })).rejects.toMatchObject({ code: 'BACKUP_CORRUPT', set, object: name })
        expect(existsSync(into)).toBe(false)
      } finally {
        await repo.put(key, original)
      }
    }
    expect((await verifyChain(repo, sealer, target)).ok).toBe(true)
    // A verify and a restore per object of the chain: 39-46 s on the 2-core machine at load 17.
  }, 180_000)

  it('a missing link: CHAIN_INCOMPLETE', async () => {
    const { sealer } = await openSealer(repo, {})
    const { sets: all } = await listManifests(repo)
    const i1 = sets[1] as Manifest
    const manifestKey = `sets/${i1.id}/manifest.json`
    const bytes = (await repo.get(manifestKey)) as Uint8Array
    await repo.delete(manifestKey)
    try {
      await expect(verifyChain(repo, sealer, sets[2] as Manifest)).rejects.toMatchObject({ code: 'CHAIN_INCOMPLETE' })
      const into = join(await tempDir('meshsync-restore-'), 'node')
      await expect(restoreIntoDir(repo, sealer, sets[2] as Manifest, into, { logger: quietLogger })).rejects.toMatchObject({ code: 'CHAIN_INCOMPLETE' })
    } finally {
      await repo.put(manifestKey, bytes)
    }
    expect((await listManifests(repo)).sets).toHaveLength(all.length)
  })

  it('after a snapshot catch-up (entity states merged, the log floor raised), the next incremental is a full', async () => {
    const third = await memoryStore(THIRD)
    await randomWrites(third, seededRandom(9), 30, ['items', 'extra'], 12)
    const snapshots: EntitySnapshot[] = []
    for await (const e of third.entities()) snapshots.push({ ns: e.ns, id: e.id, state: e.state, vv: e.meta.vv, heads: e.meta.heads, fieldHeads: e.meta.fieldHeads, updatedAt: e.meta.updatedAt })
    await store.applySnapshot(snapshots)
    await store.completeSnapshot(third.versionVector)
    await third.close()
    const source = capturingSource(store)
    const m = await createBackup(repo, source, 'incremental', opts)
    expect(m).toMatchObject({ type: 'full', parent: null })
    const { sealer } = await openSealer(repo, {})
    const into = join(await tempDir('meshsync-restore-'), 'node')
    await restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })
    expect((await restoredState(into)).state).toEqual(source.captured[0]?.state)
    // The chain goes on from it.
    await store.write([{ op: 'patch', ns: 'extra', id: 'e1', value: { after: true } }])
    expect(await createBackup(repo, source, 'incremental', opts)).toMatchObject({ type: 'incremental', parent: m.id, records: 1 })
  })

  it('two backups at once are serialized or refused cleanly, never interleaved', async () => {
    const source = capturingSource(store)
    const before = (await listManifests(repo)).sets.length
    const results = await Promise.allSettled([
      createBackup(repo, source, 'incremental', opts),
      createBackup(repo, source, 'incremental', opts),
      createBackup(repo, source, 'incremental', { ...opts, lock: { waitMs: 20_000 } }),
    ])
    const made = results.filter((r) => r.status === 'fulfilled').map((r) => r.value)
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'REPOSITORY_LOCKED' })
    expect(made.length).toBeGreaterThanOrEqual(1)
    const { sets: after } = await listManifests(repo)
    expect(after.length).toBe(before + made.length)
    // Each new incremental extends the one before it: no two share a parent.
    const parents = made.map((m) => m.parent)
    expect(new Set(parents).size).toBe(parents.length)
    const { sealer } = await openSealer(repo, {})
    for (const m of made) expect((await verifyChain(repo, sealer, m)).ok).toBe(true)
    expect(await repo.list('locks/')).toEqual([])
  })
})
