import { mkdtemp, readdir, rm } from 'node:fs/promises'
import type * as FsPromises from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { LevelKvStore } from '../../../daemon/storage/index.ts'

/**
 * A failed write (here: LevelDB answering as it does for ENOSPC) must leave no write going to
 * LevelDB until the database has been reopened, since LevelDB 1.20 would append after the torn
 * log record and a later recovery would drop those writes (test/e2e/disk-full.test.ts shows it on
 * a real full tmpfs). The free space the store sees is a stub; LevelDB itself is real.
 */

const disk = vi.hoisted(() => ({ free: 1 << 30 }))
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FsPromises>()
  return { ...actual, statfs: async () => ({ bavail: disk.free, bsize: 1 }) }
})

const enc = new TextEncoder()
const str = (v: Uint8Array | undefined): string | null => (v ? new TextDecoder().decode(v) : null)
const put = (key: string): { type: 'put'; key: string; value: Uint8Array } => ({ type: 'put', key, value: enc.encode(key) })
const SYNC = { sync: true }
/** What classic-level rejects a batch with when the log append hits ENOSPC. */
const enospc = (): Error => Object.assign(new Error('IO error: /data/db/000003.log: No space left on device'), { code: 'LEVEL_IO_ERROR' })
/** Makes the next batch's write fail with `error` (the store writes chained batches); the spy counts every batch. */
function failNextBatch(error: Error): ReturnType<typeof vi.spyOn> {
  const original = Level.prototype.batch as (this: Level<string, Uint8Array>) => ReturnType<Level<string, Uint8Array>['batch']>
  return vi.spyOn(Level.prototype, 'batch').mockImplementationOnce(function (this: Level<string, Uint8Array>) {
    const chained = original.call(this)
    vi.spyOn(chained, 'write').mockRejectedValueOnce(error)
    return chained
  } as never)
}
const codeOf = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => (e as { code?: string }).code,
  )

describe('LevelKvStore after a failed write', () => {
  let dir: string
  let store: LevelKvStore
  beforeEach(async () => {
    disk.free = 1 << 30
    dir = await mkdtemp(join(tmpdir(), 'meshsync-kvfull-'))
    store = new LevelKvStore(join(dir, 'db'), { reopenMinFreeBytes: 64 << 20, reopenIntervalMs: 60_000 })
    await store.open()
  })
  afterEach(async () => {
    vi.restoreAllMocks()
    vi.useRealTimers()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('refuses a checkpoint with STORAGE_FULL when the disk has no room to reopen, without closing the database', async () => {
    await store.batch([put('a')], SYNC)
    const close = vi.spyOn(Level.prototype, 'close')
    disk.free = 1 << 20
    expect(await codeOf(store.checkpoint())).toBe('STORAGE_FULL')
    expect(close).not.toHaveBeenCalled()
    expect((await readdir(dir)).filter((n) => n.includes('.checkpoint-'))).toEqual([])
    await store.batch([put('b')], SYNC)
    expect(str(await store.get('b'))).toBe('b')
    disk.free = 1 << 30
    const checkpoint = await store.checkpoint()
    expect(close).toHaveBeenCalledTimes(1)
    await checkpoint.snapshot.close()
    await checkpoint.remove()
  })

  it('refuses writes with STORAGE_FULL while the disk is full, keeps reads going, and reopens before the next write', async () => {
    await store.batch([put('a')], SYNC)
    const batch = failNextBatch(enospc())
    const open = vi.spyOn(Level.prototype, 'open')
    const close = vi.spyOn(Level.prototype, 'close')

    const failed = await store.batch([put('b')], SYNC).catch((e: unknown) => e as Error & { code: string })
    expect(failed).toMatchObject({ code: 'STORAGE_FULL' })
    expect(String(failed?.message)).toMatch(/disk .* is full/)
    expect(store.writeFailure?.code).toBe('STORAGE_FULL')

    // Still full: refused without LevelDB seeing the write; reads are unaffected.
    disk.free = 1 << 20
    expect(await codeOf(store.batch([put('c')], SYNC))).toBe('STORAGE_FULL')
    expect(batch).toHaveBeenCalledTimes(1)
    expect(close).not.toHaveBeenCalled()
    expect(str(await store.get('a'))).toBe('a')

    // Space freed: the next write reopens the database first, then goes through.
    disk.free = 1 << 30
    await store.batch([put('d')], SYNC)
    expect(close).toHaveBeenCalledTimes(1)
    expect(open).toHaveBeenCalledTimes(1)
    expect(close.mock.invocationCallOrder[0]).toBeLessThan(batch.mock.invocationCallOrder[1] as number)
    expect(batch).toHaveBeenCalledTimes(2)
    expect(store.writeFailure).toBeUndefined()
    const got = await store.getMany(['a', 'b', 'c', 'd'])
    expect(got.map(str)).toEqual(['a', null, null, 'd'])
  })

  it('tries to reopen at most once per interval, and stays refused while reopening fails', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    failNextBatch(enospc())
    expect(await codeOf(store.batch([put('x')], SYNC))).toBe('STORAGE_FULL')
    // The disk looks free, but LevelDB's recovery still hits ENOSPC.
    const open = vi.spyOn(Level.prototype, 'open').mockRejectedValueOnce(Object.assign(new Error('Database failed to open'), { code: 'LEVEL_DATABASE_NOT_OPEN', cause: enospc() }))
    expect(await codeOf(store.batch([put('y')], SYNC))).toBe('STORAGE_FULL')
    expect(await codeOf(store.batch([put('y')], SYNC))).toBe('STORAGE_FULL')
    expect(open).toHaveBeenCalledTimes(1)
    vi.setSystemTime(Date.now() + 60_000)
    await store.batch([put('y')], SYNC)
    expect(open).toHaveBeenCalledTimes(2)
    expect(str(await store.get('y'))).toBe('y')
    expect(await store.get('x')).toBeUndefined()
  })

  it('lets reads issued during the reopen wait for it instead of failing', async () => {
    await store.batch([put('a')], SYNC)
    failNextBatch(enospc())
    expect(await codeOf(store.batch([put('b')], SYNC))).toBe('STORAGE_FULL')
    const closing = Promise.withResolvers<void>()
    const release = Promise.withResolvers<void>()
    const realClose = Level.prototype.close
    vi.spyOn(Level.prototype, 'close').mockImplementationOnce(async function (this: Level<string, Uint8Array>) {
      closing.resolve()
      await release.promise
      return realClose.call(this)
    })
    const write = store.batch([put('c')], SYNC)
    await closing.promise
    // Nothing can be read on this thread while the database is being reopened.
    expect(store.getManyNow(['a'])).toBeUndefined()
    const reads = Promise.all([store.get('a'), store.getMany(['a', 'c']), (async () => {
      const keys: string[] = []
      for await (const [k] of store.iterate()) keys.push(k)
      return keys
    })()])
    release.resolve()
    await write
    const [a, many, keys] = await reads
    expect(str(a)).toBe('a')
    expect(str(many[0])).toBe('a')
    expect(keys).toContain('a')
    expect(str(store.getManyNow(['a'])?.[0])).toBe('a')
  })

  it('goes on writing after a refused argument (no I/O happened, no reopen)', async () => {
    failNextBatch(Object.assign(new Error('value cannot be null'), { code: 'LEVEL_INVALID_VALUE' }))
    const close = vi.spyOn(Level.prototype, 'close')
    expect(await codeOf(store.batch([put('x')], SYNC))).toBe('STORAGE_FAILURE')
    expect(store.writeFailure).toBeUndefined()
    await store.batch([put('y')], SYNC)
    expect(close).not.toHaveBeenCalled()
  })

  it('reports other I/O errors as STORAGE_FAILURE, and reopens after them too', async () => {
    failNextBatch(Object.assign(new Error('IO error: /data/db/000003.log: Input/output error'), { code: 'LEVEL_IO_ERROR' }))
    const close = vi.spyOn(Level.prototype, 'close')
    expect(await codeOf(store.batch([put('x')], SYNC))).toBe('STORAGE_FAILURE')
    expect(store.writeFailure?.code).toBe('STORAGE_FAILURE')
    await store.batch([put('y')], SYNC)
    expect(close).toHaveBeenCalledTimes(1)
  })
})
