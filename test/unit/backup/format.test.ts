import { describe, expect, it } from 'vitest'
import { createBackup } from '../../../daemon/backup/create.ts'
import { loadManifest, verifyChain } from '../../../daemon/backup/read.ts'
import { forwardOps, spliceBetween } from '../../../daemon/backup/restore.ts'
import { openSealer } from '../../../daemon/backup/seal.ts'
import { BackupService } from '../../../daemon/backup/service.ts'
import { openRepository } from '../../../daemon/backup/target.ts'
import { loadConfig } from '../../../daemon/config.ts'
import { MemoryKvStore } from '../../../daemon/storage/memory-kv-store.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { writeConfig } from '../../helpers/daemon-process.ts'
import { quietLogger, seededRandom } from '../../helpers/backup.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'
import { waitFor } from '../../helpers/wait-for.ts'

const tempDir = useTempDirs('all')

async function smallStore(): Promise<EntityStore> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'd1b2c3d4e5f60718', logger: quietLogger })
  await store.open()
  await store.write([{ op: 'put', ns: 'items', id: 'a', value: { n: 1 } }])
  return store
}

describe('formats from the future and truncated objects', () => {
  it('a manifest or repository config of a newer format: UNSUPPORTED_FORMAT', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const store = await smallStore()
    const m = await createBackup(repo, store, 'full')
    const key = `sets/${m.id}/manifest.json`
    const original = (await repo.get(key)) as Uint8Array
    await repo.put(key, new TextEncoder().encode(JSON.stringify({ ...m, format: 99 })))
    await expect(loadManifest(repo, m.id)).rejects.toMatchObject({ code: 'UNSUPPORTED_FORMAT', set: m.id })
    await repo.put(key, original)
    await repo.put('config.json', new TextEncoder().encode(JSON.stringify({ format: 7, id: 'x', created: '' })))
    await expect(openSealer(repo, {})).rejects.toMatchObject({ code: 'UNSUPPORTED_FORMAT' })
    await store.close()
  })

  it('a truncated chunk is named by verify', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const store = await smallStore()
    const m = await createBackup(repo, store, 'full')
    const key = `sets/${m.id}/c000000`
    await repo.put(key, ((await repo.get(key)) as Uint8Array).subarray(0, 10))
    const { sealer } = await openSealer(repo, {})
    const result = await verifyChain(repo, sealer, m)
    expect(result.problems).toEqual([expect.objectContaining({ object: 'c000000', code: 'BACKUP_CORRUPT' })])
    await store.close()
  })
})

describe('forward changes for a live restore', () => {
  it('spliceBetween turns one text into another with one splice, never splitting a surrogate pair', () => {
    const rng = seededRandom(3)
    const alphabet = ['a', 'b', ' ', '😀', '😁', 'é']
    const word = (): string => Array.from({ length: Math.floor(rng() * 8) }, () => alphabet[Math.floor(rng() * alphabet.length)]).join('')
    for (let i = 0; i < 500; i++) {
      const from = word()
      const to = word()
      const s = spliceBetween(from, to)
      if (from === to) {
        expect(s).toBeUndefined()
        continue
      }
      const [pos, del, ins] = s as [number, number, string]
      expect(from.slice(0, pos) + ins + from.slice(pos + del)).toBe(to)
      expect(ins.isWellFormed()).toBe(true)
      expect(from.slice(0, pos).isWellFormed()).toBe(true)
    }
  })

  it('forwardOps: a put when the record differs, a splice per changed text', () => {
    expect(forwardOps('n', 'i', { a: 1 }, {}, { a: 1 }, {})).toEqual([])
    expect(forwardOps('n', 'i', { a: 1, b: { x: 1, y: 2 } }, {}, { b: { y: 2, x: 1 }, a: 1 }, {})).toEqual([])
    expect(forwardOps('n', 'i', { a: 1 }, { t: 'hello' }, { a: 2 }, { t: 'help', u: 'gone' })).toEqual([
      { op: 'put', ns: 'n', id: 'i', value: { a: 1 } },
      { op: 'text', ns: 'n', id: 'i', name: 't', splices: [[3, 1, 'lo']] },
      { op: 'text', ns: 'n', id: 'i', name: 'u', splices: [[0, 4, '']] },
    ])
    // Undelete: the entity is recreated from nothing.
    expect(forwardOps('n', 'i', {}, { t: 'x' }, undefined, {})).toEqual([
      { op: 'put', ns: 'n', id: 'i', value: {} },
      { op: 'text', ns: 'n', id: 'i', name: 't', splices: [[0, 0, 'x']] },
    ])
  })
})

describe('config and schedules', () => {
  it('reads the backup section and refuses bad settings', async () => {
    const dataDir = await tempDir('meshsync-cfg-')
    await writeConfig(dataDir, { backup: { target: '/mnt/backups', passphraseFile: 'pass.txt', schedules: [{ type: 'incremental', everyMs: 3_600_000, keep: { daily: 7 } }] } })
    const config = await loadConfig({ dataDir })
    expect(config.backup).toMatchObject({ target: '/mnt/backups', schedules: [{ type: 'incremental', everyMs: 3_600_000, keep: { daily: 7 } }] })
    expect(config.backup.passphraseFile).toMatch(/pass\.txt$/)
    for (const bad of [{ backup: { schedules: [{ type: 'hourly', everyMs: 5000 }] } }, { backup: { schedules: [{ type: 'full', everyMs: 5 }] } }, { backup: { colour: 1 } }]) {
      await writeConfig(dataDir, bad)
      await expect(loadConfig({ dataDir })).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    }
  })

  it('the service takes scheduled backups and prunes after each', async () => {
    const store = await smallStore()
    const target = await tempDir('meshsync-repo-')
    const service = new BackupService({ store, logger: quietLogger }, { target, schedules: [{ type: 'full', everyMs: 50, keep: { last: 2 } }] })
    service.start()
    try {
      await waitFor(async () => (await service.list()).sets.length === 2 && service.status().lastSuccess !== null, { timeout: 10_000 })
      await new Promise((r) => setTimeout(r, 300))
      // Each run prunes to the last two; one more may have landed since the last prune.
      expect((await service.list()).sets.length).toBeLessThanOrEqual(3)
    } finally {
      await service.stop()
    }
    expect(service.status()).toMatchObject({ running: false, lastFailure: null, target })
    await store.close()
  })
})
