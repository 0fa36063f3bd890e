import { describe, expect, it } from 'vitest'
import type { Manifest } from '../../../daemon/backup/format.ts'
import { selectRetained } from '../../../daemon/backup/maintain.ts'
import { createBackup } from '../../../daemon/backup/create.ts'
import { prune } from '../../../daemon/backup/maintain.ts'
import { listManifests } from '../../../daemon/backup/read.ts'
import { openRepository } from '../../../daemon/backup/target.ts'
import { MemoryKvStore } from '../../../daemon/storage/memory-kv-store.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { quietLogger } from '../../helpers/backup.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'

const tempDir = useTempDirs('all')

function set(id: string, at: string, type: Manifest['type'] = 'full', parent: string | null = null, node = 'n1'): Manifest {
  return { id, type, parent, base: parent, snapshotAt: at, created: at, node } as unknown as Manifest
}

describe('selectRetained', () => {
  // One full a day at 02:00 and 14:00 from 2026-01-01 for 60 days.
  const sets: Manifest[] = []
  for (let d = 0; d < 60; d++) {
    for (const h of ['02', '14']) {
      const day = new Date(Date.UTC(2026, 0, 1 + d)).toISOString().slice(0, 10)
      sets.push(set(`s${day}T${h}`, `${day}T${h}:00:00.000Z`))
    }
  }

  it('keep-last keeps the newest n', () => {
    const { keep, remove } = selectRetained(sets, { last: 3 })
    expect([...keep.keys()]).toEqual(['s2026-03-01T14', 's2026-03-01T02', 's2026-02-28T14'])
    expect(remove).toHaveLength(117)
  })

  it('keep-daily keeps the newest of each of the last n days', () => {
    const { keep } = selectRetained(sets, { daily: 3 })
    expect([...keep.keys()].sort()).toEqual(['s2026-02-27T14', 's2026-02-28T14', 's2026-03-01T14'])
  })

  it('keep-weekly and keep-monthly use ISO weeks and months (UTC)', () => {
    const weekly = [...selectRetained(sets, { weekly: 2 }).keep.keys()].sort()
    // 2026-03-01 is a Sunday: its ISO week began 2026-02-23; the week before ends Sunday 2026-02-22.
    expect(weekly).toEqual(['s2026-02-22T14', 's2026-03-01T14'])
    const monthly = [...selectRetained(sets, { monthly: 5 }).keep.keys()].sort()
    expect(monthly).toEqual(['s2026-01-31T14', 's2026-02-28T14', 's2026-03-01T14'])
  })

  it('keep-hourly and a union of rules', () => {
    const { keep } = selectRetained(sets, { last: 1, hourly: 2, monthly: 2 })
    expect([...keep.keys()].sort()).toEqual(['s2026-02-28T14', 's2026-03-01T02', 's2026-03-01T14'])
    expect(keep.get('s2026-03-01T14')).toEqual(['last', 'hourly', 'monthly'])
  })

  it('keeps the whole chain of a kept incremental, per node', () => {
    const chain = [
      set('f1', '2026-01-01T00:00:00.000Z'),
      set('i1', '2026-01-02T00:00:00.000Z', 'incremental', 'f1'),
      set('i2', '2026-01-03T00:00:00.000Z', 'incremental', 'i1'),
      set('f2', '2026-01-01T00:00:00.000Z', 'full', null, 'n2'),
      set('f3', '2025-12-01T00:00:00.000Z', 'full', null, 'n2'),
    ]
    const { keep, remove } = selectRetained(chain, { last: 1 })
    expect([...keep.keys()].sort()).toEqual(['f1', 'f2', 'i1', 'i2'])
    expect(keep.get('f1')).toEqual(['chain of i2'])
    expect(remove.map((m) => m.id)).toEqual(['f3'])
  })
})

describe('prune', () => {
  it('removes exactly what the policy does not keep (sets made at injected times)', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'c1b2c3d4e5f60718', logger: quietLogger })
    await store.open()
    const made: string[] = []
    const start = Date.UTC(2026, 5, 1, 0, 0, 0)
    for (let i = 0; i < 10; i++) {
      await store.write([{ op: 'put', ns: 'items', id: `e${i}`, value: { i } }])
      const t = start + i * 12 * 3_600_000 // every 12 hours
      const m = await createBackup(repo, store, i % 4 === 0 ? 'full' : 'incremental', { now: () => t })
      made.push(m.id)
    }
    await expect(prune(repo, {})).rejects.toMatchObject({ code: 'INVALID_TARGET' })
    const dry = await prune(repo, { daily: 2 }, { dryRun: true })
    expect((await listManifests(repo)).sets).toHaveLength(10)
    const result = await prune(repo, { daily: 2 })
    expect(result.removed).toEqual(dry.removed)
    // Days: i=8 (day 4, 00:00) and i=9 (day 4, 12:00) -> newest of day 4 is i=9; day 3: i=7.
    // i=9 and i=7 are incrementals: their chain back to the full i=8 and i=4 stays.
    const left = (await listManifests(repo)).sets.map((m) => m.id).sort()
    expect(left).toEqual([made[4], made[5], made[6], made[7], made[8], made[9]].sort())
    expect([...result.removed].sort()).toEqual([made[0], made[1], made[2], made[3]].sort())
    await store.close()
    await repo.close()
  })
})
