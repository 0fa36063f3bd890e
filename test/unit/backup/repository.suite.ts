/**
 * The one test suite every {@link BackupRepository} implementation must pass (as
 * kv-store.suite.ts is for the KV stores). `make` returns a fresh, empty repository.
 */
import { describe, expect, it } from 'vitest'
import { acquireLock, breakStale, readLocks } from '../../../daemon/backup/lock.ts'
import type { BackupRepository } from '../../../daemon/backup/repository.ts'

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b))

export function backupRepositorySuite(name: string, make: () => Promise<BackupRepository>): void {
  describe(`BackupRepository: ${name}`, () => {
    it('puts, gets, lists and deletes objects', async () => {
      const repo = await make()
      expect(await repo.get('config.json')).toBeUndefined()
      await repo.put('config.json', bytes('{"a":1}'))
      await repo.put('locks/a.json', bytes('A'))
      await repo.put('locks/b.json', bytes('B'))
      expect(text(await repo.get('config.json'))).toBe('{"a":1}')
      await repo.put('config.json', bytes('{"a":2}'))
      expect(text(await repo.get('config.json'))).toBe('{"a":2}')
      expect(await repo.list('locks/')).toEqual(['locks/a.json', 'locks/b.json'])
      await repo.delete('locks/a.json')
      await repo.delete('locks/missing.json')
      expect(await repo.list('locks/')).toEqual(['locks/b.json'])
      await repo.close()
    })

    it('shows a set only once its manifest is published; abort leaves nothing', async () => {
      const repo = await make()
      const w = await repo.beginSet('s1')
      await w.put('c000000', bytes('chunk'))
      expect(await repo.listSets()).toEqual([])
      await w.publish(bytes('{}'))
      expect(await repo.listSets()).toEqual(['s1'])
      expect(text(await repo.get('sets/s1/c000000'))).toBe('chunk')
      const w2 = await repo.beginSet('s2')
      await w2.put('c000000', bytes('x'))
      await w2.abort()
      expect(await repo.listSets()).toEqual(['s1'])
      // A writer that died before publishing leaves debris that is invisible and removable.
      const w3 = await repo.beginSet('s3')
      await w3.put('c000000', bytes('y'))
      expect(await repo.listSets()).toEqual(['s1'])
      expect(await repo.removeDebris()).toBe(1)
      await repo.deleteSet('s1')
      expect(await repo.listSets()).toEqual([])
      expect(await repo.list('sets/')).toEqual([])
      await repo.close()
    })

    it('locks exclusively, refuses a second holder, breaks stale locks', async () => {
      const repo = await make()
      const a = await acquireLock(repo, { owner: 'a', mode: 'exclusive' })
      await expect(acquireLock(repo, { owner: 'b', mode: 'exclusive' })).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
      await a.release()
      const b = await acquireLock(repo, { owner: 'b', mode: 'exclusive' })
      await b.release()
      // A holder whose pid is dead on this host.
      await repo.put('locks/dead.json', bytes(JSON.stringify({ id: 'dead', owner: 'x', host: (await import('node:os')).hostname(), pid: 2 ** 22 + 12345, createdAt: 1, heartbeatAt: Date.now() })))
      // A holder on another host whose heartbeat stopped long ago.
      await repo.put('locks/old.json', bytes(JSON.stringify({ id: 'old', owner: 'y', host: 'elsewhere', pid: 1, createdAt: 1, heartbeatAt: Date.now() - 3_600_000 })))
      // A live holder on another host.
      await repo.put('locks/live.json', bytes(JSON.stringify({ id: 'live', owner: 'z', host: 'elsewhere', pid: 1, createdAt: 1, heartbeatAt: Date.now() })))
      const broken = await breakStale(repo, Date.now, 60_000)
      expect(broken.map((l) => l.id).sort()).toEqual(['dead', 'old'])
      await expect(acquireLock(repo, { owner: 'c', mode: 'exclusive' })).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
      await repo.delete('locks/live.json')
      const c = await acquireLock(repo, { owner: 'c', mode: 'exclusive' })
      expect((await readLocks(repo)).map((l) => l.info?.owner)).toEqual(['c'])
      await c.release()
      expect(await readLocks(repo)).toEqual([])
      await repo.close()
    })

    it('lets shared locks coexist and keeps an exclusive one apart from any other', async () => {
      const repo = await make()
      const r1 = await acquireLock(repo, { owner: 'reader 1', mode: 'shared' })
      const r2 = await acquireLock(repo, { owner: 'reader 2', mode: 'shared' })
      await expect(acquireLock(repo, { owner: 'writer', mode: 'exclusive' })).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
      await r1.release()
      await expect(acquireLock(repo, { owner: 'writer', mode: 'exclusive' })).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
      await r2.release()
      const w = await acquireLock(repo, { owner: 'writer', mode: 'exclusive' })
      await expect(acquireLock(repo, { owner: 'reader 3', mode: 'shared' })).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
      await w.release()
      // A lock object from before modes existed is exclusive.
      await repo.put('locks/legacy.json', bytes(JSON.stringify({ id: 'legacy', owner: 'old', host: 'elsewhere', pid: 1, createdAt: 1, heartbeatAt: Date.now() })))
      await expect(acquireLock(repo, { owner: 'reader 4', mode: 'shared' })).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
      await repo.delete('locks/legacy.json')
      expect(await readLocks(repo)).toEqual([])
      await repo.close()
    })

    it('never lets two racing takers both proceed, whatever their modes', async () => {
      const repo = await make()
      for (let round = 0; round < 4; round++) {
        const results = await Promise.allSettled([acquireLock(repo, { owner: 'x', mode: 'exclusive' }), acquireLock(repo, { owner: 'y', mode: round % 2 === 0 ? 'shared' : 'exclusive' })])
        const won = results.filter((r) => r.status === 'fulfilled')
        expect(won.length).toBeLessThanOrEqual(1)
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'REPOSITORY_LOCKED' })
        for (const r of won) await r.value.release()
      }
      await repo.close()
    })

    it('lets exactly one of two racing takers win', async () => {
      const repo = await make()
      for (let round = 0; round < 5; round++) {
        const results = await Promise.allSettled([acquireLock(repo, { owner: 'x', mode: 'exclusive' }), acquireLock(repo, { owner: 'y', mode: 'exclusive' })])
        const won = results.filter((r) => r.status === 'fulfilled')
        expect(won.length).toBeLessThanOrEqual(1)
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'REPOSITORY_LOCKED' })
        for (const r of won) await r.value.release()
      }
      await repo.close()
    })
  })
}
