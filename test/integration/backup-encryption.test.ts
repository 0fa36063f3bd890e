import { join } from 'node:path'
import { zstdDecompressSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { createBackup } from '../../daemon/backup/create.ts'
import { verifyChain } from '../../daemon/backup/methods.ts'
import { listManifests } from '../../daemon/backup/read.ts'
import type { BackupRepository } from '../../daemon/backup/repository.ts'
import { restoreIntoDir } from '../../daemon/backup/restore.ts'
import { openSealer } from '../../daemon/backup/seal.ts'
import { MemoryKvStore } from '../../daemon/storage/memory-kv-store.ts'
import { EntityStore } from '../../daemon/store/entity-store.ts'
import { quietLogger, restoredState, stateOf } from '../helpers/backup.ts'
import { repositoryKinds } from '../helpers/s3.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

const tempDir = useTempDirs('all')
const kdf = { N: 1024, r: 8, p: 1 }
const MARKERS = ['secret-marker-7f3a', 'doc-secret-id', 'confidential paragraph']
const kinds = repositoryKinds('enc')

async function storeWithSecrets(): Promise<EntityStore> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'b1b2c3d4e5f60718', logger: quietLogger })
  await store.open()
  await store.write([
    { op: 'put', ns: 'vault', id: 'doc-secret-id', value: { note: 'secret-marker-7f3a'.repeat(3) } },
    { op: 'text', ns: 'vault', id: 'doc-secret-id', name: 'body', splices: [[0, 0, 'confidential paragraph '.repeat(4)]] },
  ])
  return store
}

async function allStored(repo: BackupRepository): Promise<Buffer> {
  const keys = await repo.list('sets/')
  return Buffer.concat(await Promise.all(keys.filter((k) => !k.endsWith('manifest.json')).map(async (k) => Buffer.from((await repo.get(k)) as Uint8Array))))
}

describe.each(kinds)('encrypted repository (%s)', (_kind, makeRepo) => {
  it('refuses a wrong or missing passphrase, stores no plaintext, restores with the right one', async () => {
    const repo = await makeRepo()
    const store = await storeWithSecrets()
    const manifest = await createBackup(repo, store, 'full', { passphrase: 'correct horse', kdf })
    expect(manifest.encrypted).toBe(true)

    await expect(openSealer(repo, { passphrase: 'wrong horse' })).rejects.toMatchObject({ code: 'WRONG_PASSPHRASE' })
    await expect(openSealer(repo, {})).rejects.toMatchObject({ code: 'PASSPHRASE_REQUIRED' })
    await expect(createBackup(repo, store, 'incremental', { passphrase: 'wrong horse' })).rejects.toMatchObject({ code: 'WRONG_PASSPHRASE' })
    expect((await listManifests(repo)).sets).toHaveLength(1)
    expect(await repo.list('locks/')).toEqual([])

    const stored = await allStored(repo)
    for (const marker of MARKERS) expect(stored.includes(marker)).toBe(false)
    const { sealer } = await openSealer(repo, { passphrase: 'correct horse' })
    expect((await verifyChain(repo, sealer, manifest)).ok).toBe(true)
    const into = join(await tempDir('meshsync-restore-'), 'node')
    await restoreIntoDir(repo, sealer, manifest, into, { logger: quietLogger })
    expect((await restoredState(into)).state).toEqual(await stateOf(store.entities()))
    await store.close()
    await repo.close()
  })

  it('a plain repository refuses a passphrase; its chunks are only compressed', async () => {
    const repo = await makeRepo()
    const store = await storeWithSecrets()
    await createBackup(repo, store, 'full')
    await expect(createBackup(repo, store, 'full', { passphrase: 'x' })).rejects.toMatchObject({ code: 'REPOSITORY_NOT_ENCRYPTED' })
    // The control for the test above: decompressed, the same chunks and index do show the data.
    const keys = (await repo.list('sets/')).filter((k) => /\/(c\d+|index)$/.test(k))
    const plain = Buffer.concat(await Promise.all(keys.map(async (k) => zstdDecompressSync(((await repo.get(k)) as Uint8Array).subarray(5)))))
    for (const marker of MARKERS) expect(plain.includes(marker)).toBe(true)
    await store.close()
    await repo.close()
  })
})
