/**
 * The one test suite every {@link BackupRepository} implementation must pass (as
 * kv-store.suite.ts is for the KV stores): objects, sets and their visibility, debris, and the
 * repository lock built on them (docs/backup-format.md, "Atomicity"). `create` returns a fresh,
 * empty repository, a second handle on the same one (as another process would open it) and one
 * that cannot be reached. Errors are asserted by `code`, never by message.
 */
import { hostname } from 'node:os'
import { describe, expect, it } from 'vitest'
import { acquireLock, breakStale, readLocks } from '../../../daemon/backup/lock.ts'
import type { BackupRepository } from '../../../daemon/backup/repository.ts'

/** What the suite needs of one implementation. */
export interface BackupRepositoryFixture {
  /** A fresh, empty repository. */
  readonly repo: BackupRepository
  /** A new handle on the same repository. */
  readonly reopen: () => BackupRepository
  /** A repository of this kind that cannot be reached (every call fails with TARGET_UNREACHABLE). */
  readonly unreachable: () => BackupRepository
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b))

export function backupRepositorySuite(name: string, create: () => Promise<BackupRepositoryFixture>): void {
  describe(`BackupRepository: ${name}`, () => {
    /** Runs `fn` on a fresh repository and closes it (and every handle `fn` opened) afterwards. */
    const using = async (fn: (f: BackupRepositoryFixture, open: () => BackupRepository) => Promise<void>): Promise<void> => {
      const fixture = await create()
      const opened: BackupRepository[] = [fixture.repo]
      try {
        await fn(fixture, () => {
          const r = fixture.reopen()
          opened.push(r)
          return r
        })
      } finally {
        for (const r of opened) await r.close()
      }
    }

    describe('objects', () => {
      it('puts, gets, overwrites, lists and deletes objects', () =>
        using(async ({ repo }) => {
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
          expect(await repo.get('locks/a.json')).toBeUndefined()
        }))

      it('keeps every byte of an object, an empty one too', () =>
        using(async ({ repo }) => {
          const all = Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 256)
          await repo.put('sets/x/c000000', all)
          await repo.put('empty', new Uint8Array(0))
          expect(Array.from((await repo.get('sets/x/c000000')) ?? [])).toEqual(Array.from(all))
          const empty = await repo.get('empty')
          expect(empty).toBeInstanceOf(Uint8Array)
          expect(empty?.length).toBe(0)
        }))

      it('lists the keys that start with a prefix, sorted, at any depth', () =>
        using(async ({ repo }) => {
          for (const key of ['locks/b.json', 'locks/a.json', 'locks/ab.json', 'config.json', 'sets/s2/c000000', 'sets/s1/index', 'sets/s1/c000000']) await repo.put(key, bytes(key))
          expect(await repo.list('locks/a')).toEqual(['locks/a.json', 'locks/ab.json'])
          expect(await repo.list('sets/')).toEqual(['sets/s1/c000000', 'sets/s1/index', 'sets/s2/c000000'])
          expect(await repo.list('sets/s1/')).toEqual(['sets/s1/c000000', 'sets/s1/index'])
          expect(await repo.list('nothing/')).toEqual([])
        }))

      it('is the same repository through a second handle', () =>
        using(async ({ repo }, open) => {
          await repo.put('config.json', bytes('{"a":1}'))
          const w = await repo.beginSet('s1')
          await w.put('c000000', bytes('chunk'))
          await w.publish(bytes('{}'))
          const other = open()
          expect(text(await other.get('config.json'))).toBe('{"a":1}')
          expect(await other.listSets()).toEqual(['s1'])
          expect(text(await other.get('sets/s1/c000000'))).toBe('chunk')
          await other.deleteSet('s1')
          expect(await repo.listSets()).toEqual([])
        }))
    })

    describe('sets', () => {
      it('shows a set only once its manifest is published; abort leaves nothing', () =>
        using(async ({ repo }) => {
          const w = await repo.beginSet('s1')
          await w.put('c000000', bytes('chunk'))
          expect(await repo.listSets()).toEqual([])
          expect(await repo.get('sets/s1/manifest.json')).toBeUndefined()
          await w.publish(bytes('{"id":"s1"}'))
          expect(await repo.listSets()).toEqual(['s1'])
          expect(text(await repo.get('sets/s1/c000000'))).toBe('chunk')
          expect(text(await repo.get('sets/s1/manifest.json'))).toBe('{"id":"s1"}')
          const w2 = await repo.beginSet('s2')
          await w2.put('c000000', bytes('x'))
          await w2.abort()
          expect(await repo.listSets()).toEqual(['s1'])
          expect(await repo.list('sets/')).toEqual(['sets/s1/c000000', 'sets/s1/manifest.json'])
          // A writer that died before publishing leaves debris that is invisible and removable.
          const w3 = await repo.beginSet('s3')
          await w3.put('c000000', bytes('y'))
          expect(await repo.listSets()).toEqual(['s1'])
          expect(await repo.removeDebris()).toBe(1)
          expect(await repo.removeDebris()).toBe(0)
          expect(await repo.listSets()).toEqual(['s1'])
          await repo.deleteSet('s1')
          expect(await repo.listSets()).toEqual([])
          expect(await repo.list('sets/')).toEqual([])
        }))

      it('lists published sets sorted, whatever the order they were written in', () =>
        using(async ({ repo }) => {
          for (const id of ['20261126T130512.345Z-bb', '20261126T120000.000Z-aa', '20261127T000000.000Z-cc']) {
            const w = await repo.beginSet(id)
            await w.put('index', bytes(id))
            await w.publish(bytes('{}'))
          }
          expect(await repo.listSets()).toEqual(['20261126T120000.000Z-aa', '20261126T130512.345Z-bb', '20261127T000000.000Z-cc'])
        }))

      it('deletes one set and nothing else; a set already gone is no error', () =>
        using(async ({ repo }) => {
          for (const id of ['s1', 's2']) {
            const w = await repo.beginSet(id)
            await w.put('c000000', bytes(id))
            await w.publish(bytes('{}'))
          }
          await repo.put('config.json', bytes('{}'))
          await repo.deleteSet('s1')
          await repo.deleteSet('s1')
          await repo.deleteSet('never')
          expect(await repo.listSets()).toEqual(['s2'])
          expect(await repo.list('sets/')).toEqual(['sets/s2/c000000', 'sets/s2/manifest.json'])
          expect(text(await repo.get('config.json'))).toBe('{}')
        }))

      it('finds no debris in an empty repository, nor among published sets', () =>
        using(async ({ repo }) => {
          expect(await repo.removeDebris()).toBe(0)
          const w = await repo.beginSet('s1')
          await w.put('c000000', bytes('chunk'))
          await w.publish(bytes('{}'))
          expect(await repo.removeDebris()).toBe(0)
          expect(await repo.listSets()).toEqual(['s1'])
        }))
    })

    describe('locks', () => {
      it('locks exclusively, refuses a second holder, breaks stale locks', () =>
        using(async ({ repo }) => {
          const a = await acquireLock(repo, { owner: 'a', mode: 'exclusive' })
          await expect(acquireLock(repo, { owner: 'b', mode: 'exclusive' })).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
          await a.release()
          const b = await acquireLock(repo, { owner: 'b', mode: 'exclusive' })
          await b.release()
          // A holder whose pid is dead on this host.
          await repo.put('locks/dead.json', bytes(JSON.stringify({ id: 'dead', owner: 'x', host: hostname(), pid: 2 ** 22 + 12345, createdAt: 1, heartbeatAt: Date.now() })))
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
        }))

      it('lets shared locks coexist and keeps an exclusive one apart from any other', () =>
        using(async ({ repo }) => {
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
        }))

      it('sees a lock taken through another handle', () =>
        using(async ({ repo }, open) => {
          const held = await acquireLock(open(), { owner: 'elsewhere', mode: 'exclusive' })
          await expect(acquireLock(repo, { owner: 'here', mode: 'shared' })).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
          await held.release()
          const mine = await acquireLock(repo, { owner: 'here', mode: 'shared' })
          await mine.release()
        }))

      it('never lets two racing takers both proceed, whatever their modes', () =>
        using(async ({ repo }) => {
          for (let round = 0; round < 4; round++) {
            const results = await Promise.allSettled([acquireLock(repo, { owner: 'x', mode: 'exclusive' }), acquireLock(repo, { owner: 'y', mode: round % 2 === 0 ? 'shared' : 'exclusive' })])
            const won = results.filter((r) => r.status === 'fulfilled')
            expect(won.length).toBeLessThanOrEqual(1)
            for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'REPOSITORY_LOCKED' })
            for (const r of won) await r.value.release()
          }
          expect(await readLocks(repo)).toEqual([])
        }))
    })

    describe('failures', () => {
      it('reports a repository it cannot reach as TARGET_UNREACHABLE', () =>
        using(async ({ unreachable }) => {
          const repo = unreachable()
          try {
            await expect(repo.listSets()).rejects.toMatchObject({ code: 'TARGET_UNREACHABLE' })
            await expect(repo.get('config.json')).rejects.toMatchObject({ code: 'TARGET_UNREACHABLE' })
            await expect(repo.put('config.json', bytes('{}'))).rejects.toMatchObject({ code: 'TARGET_UNREACHABLE' })
          } finally {
            await repo.close()
          }
        }))
    })
  })
}
