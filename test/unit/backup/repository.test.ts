import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { acquireLock, readLocks } from '../../../daemon/backup/lock.ts'
import { openRepository } from '../../../daemon/backup/target.ts'
import { startS3, type S3Server } from '../../helpers/s3.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'
import { backupRepositorySuite } from './repository.suite.ts'

const tempDir = useTempDirs('all')
let s3: S3Server
let prefixes = 0

beforeAll(async () => {
  s3 = await startS3()
})
afterAll(async () => {
  await s3?.close()
})

backupRepositorySuite('directory', async () => {
  const dir = await tempDir('meshsync-repo-')
  // A repository whose path runs through a regular file.
  const file = join(await tempDir('meshsync-repo-'), 'a-file')
  await writeFile(file, 'not a directory')
  return {
    repo: openRepository(dir),
    reopen: () => openRepository(dir),
    unreachable: () => openRepository(join(file, 'repo')),
  }
})

backupRepositorySuite('s3', async () => {
  const target = s3.target(`repo-${++prefixes}`)
  return {
    repo: openRepository(target, { s3: s3.client }),
    reopen: () => openRepository(target, { s3: s3.client }),
    unreachable: () => openRepository('s3://bucket/x?endpoint=http%3A%2F%2F127.0.0.1%3A1', { s3: { ...s3.client, endpoint: 'http://127.0.0.1:1', maxAttempts: 1 } }),
  }
})

describe('openRepository', () => {
  it('refuses what is not a target', () => {
    expect(() => openRepository('')).toThrow(expect.objectContaining({ code: 'INVALID_TARGET' }))
    expect(() => openRepository('ftp://x/y')).toThrow(expect.objectContaining({ code: 'INVALID_TARGET' }))
    expect(() => openRepository('s3://A_B/x')).toThrow(expect.objectContaining({ code: 'INVALID_TARGET' }))
  })

  it('refuses a key that leaves a directory repository', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    await expect(repo.get('../outside')).rejects.toMatchObject({ code: 'INVALID_TARGET' })
    await expect(repo.put('sets/../../outside', new Uint8Array(1))).rejects.toMatchObject({ code: 'INVALID_TARGET' })
    await repo.close()
  })
})

describe('lock heartbeat', () => {
  it('refreshes while held and never writes the lock back after release', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const lock = await acquireLock(repo, { owner: 'beat', mode: 'exclusive', heartbeatMs: 5 })
    const first = lock.info.heartbeatAt
    await new Promise((r) => setTimeout(r, 60))
    const [held] = await readLocks(repo)
    expect(held?.info?.heartbeatAt).toBeGreaterThan(first)
    await lock.release()
    await new Promise((r) => setTimeout(r, 40))
    expect(await readLocks(repo)).toEqual([])
    await repo.close()
  })
})
