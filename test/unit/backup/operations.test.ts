import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DirRepository } from '../../../daemon/backup/dir-repository.ts'
import { BackupBusyError, guardRepository, OperationRunner } from '../../../daemon/backup/operations.ts'
import { checkTarget } from '../../../daemon/backup/preflight.ts'
import { makeDirs } from '../../../daemon/make-dirs.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'

/** docs/backups.md (Long operations): one at a time, refused at once when busy, a deadline, an abort path. */

const tempDir = useTempDirs('each')
const never = (): Promise<never> => new Promise<never>(() => undefined)

describe('OperationRunner', () => {
  it('refuses a second operation at once with BACKUP_BUSY and a retry hint from the first one\'s progress', async () => {
    let now = 1_000_000
    const runner = new OperationRunner({ now: () => now })
    let release!: () => void
    const first = runner.run('backup', (job) => {
      job.progress({ phase: 'backup', done: 25, total: 100 })
      return new Promise<string>((resolve) => (release = () => resolve('done')))
    })
    await Promise.resolve()
    now += 10_000 // 25% in 10 s: 30 s left
    expect(runner.progress()).toMatchObject({ kind: 'backup', done: 25, total: 100, elapsedMs: 10_000, etaMs: 30_000 })
    let refused: unknown
    try {
      await runner.run('restore', async () => 'never runs')
    } catch (error) {
      refused = error
    }
    expect(refused).toBeInstanceOf(BackupBusyError)
    expect(refused).toMatchObject({ code: 'BACKUP_BUSY', retryAfterSec: 30 })
    release()
    expect(await first).toBe('done')
    expect(runner.progress()).toBeNull()
    expect(await runner.run('verify', async () => 'next')).toBe('next')
  })

  it('aborts an operation at its deadline, even one stuck in a call that never returns', async () => {
    const runner = new OperationRunner({ deadlineMs: 50 })
    let signal: AbortSignal | undefined
    await expect(
      runner.run('backup', (job) => {
        signal = job.signal
        return never()
      }),
    ).rejects.toMatchObject({ code: 'BACKUP_ABORTED', message: expect.stringContaining('deadline') })
    expect(signal?.aborted).toBe(true)
    expect(runner.busy).toBe(false)
    expect(runner.abandoned).toBe(1)
  })

  it('stop() aborts the running operation and refuses new ones', async () => {
    const runner = new OperationRunner()
    const running = runner.run('restore', never)
    await Promise.resolve()
    await runner.stop()
    await expect(running).rejects.toMatchObject({ code: 'BACKUP_ABORTED' })
    await expect(runner.run('backup', async () => 1)).rejects.toMatchObject({ code: 'BACKUP_ABORTED' })
  })

  it('a guarded repository refuses calls once aborted (deletes still work, for cleanup) and counts bytes', async () => {
    const repo = new DirRepository(await tempDir('meshsync-guard-'))
    const controller = new AbortController()
    let bytes = 0
    const guarded = guardRepository(repo, controller.signal, (n) => (bytes += n))
    await guarded.put('a/b.bin', new Uint8Array(10))
    expect(await guarded.get('a/b.bin')).toHaveLength(10)
    expect(bytes).toBe(20)
    controller.abort()
    await expect(guarded.put('a/c.bin', new Uint8Array(1))).rejects.toMatchObject({ code: 'BACKUP_ABORTED' })
    await expect(guarded.list('a/')).rejects.toMatchObject({ code: 'BACKUP_ABORTED' })
    await guarded.delete('a/b.bin')
    expect(await repo.list('a/')).toEqual([])
  })
})

describe('checkTarget', () => {
  it('takes an absolute writable directory, or one to be made under one, and leaves nothing behind', async () => {
    const dir = await tempDir('meshsync-target-')
    await checkTarget(dir, 'write')
    await checkTarget(join(dir, 'new', 'repo'), 'write')
    await checkTarget(join(dir, 'missing'), 'read')
    expect(await readdir(dir)).toEqual([])
    await checkTarget('s3://bucket/prefix?endpoint=http://127.0.0.1:1', 'write')
  })

  it('refuses relative paths, files, /proc/self and unknown schemes with INVALID_TARGET', async () => {
    const dir = await tempDir('meshsync-target-')
    await writeFile(join(dir, 'file'), 'x')
    for (const [target, access] of [
      ['backups', 'write'],
      ['./repo', 'read'],
      ['../repo', 'write'],
      [join(dir, 'file'), 'read'],
      [join(dir, 'file', 'below'), 'write'],
      ['/proc/self', 'write'],
      ['/proc/self/meshsync', 'write'],
      ['ftp://host/x', 'write'],
      ['', 'read'],
    ] as const) {
      await expect(checkTarget(target, access), target).rejects.toMatchObject({ code: 'INVALID_TARGET' })
    }
  })
})

describe('makeDirs', () => {
  it('makes every missing level, and fails (never loops) where a level cannot be made', async () => {
    const dir = await tempDir('meshsync-mkdirs-')
    await makeDirs(join(dir, 'a', 'b', 'c'))
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['c'])
    await makeDirs(join(dir, 'a', 'b', 'c'))
    await writeFile(join(dir, 'f'), 'x')
    await expect(makeDirs(join(dir, 'f'))).rejects.toMatchObject({ code: 'EEXIST' })
    await expect(makeDirs(join(dir, 'f', 'g'))).rejects.toMatchObject({ code: 'ENOTDIR' })
    // Node's own recursive mkdir retries this one for ever.
    await expect(makeDirs('/proc/self/meshsync/locks')).rejects.toMatchObject({ code: 'ENOENT' })
    await mkdir(join(dir, 'x'))
  })
})
