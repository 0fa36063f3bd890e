import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createFilesBackup, type FilesSource } from '../../daemon/backup/create-files.ts'
import { createBackup } from '../../daemon/backup/create.ts'
import { verifyBackup, synthesizeFull } from '../../daemon/backup/maintain.ts'
import { verifyChain } from '../../daemon/backup/methods.ts'
import { loadManifest } from '../../daemon/backup/read.ts'
import { restoreIntoDir, restoreIntoLive } from '../../daemon/backup/restore.ts'
import { openSealer } from '../../daemon/backup/seal.ts'
import { BackupService } from '../../daemon/backup/service.ts'
import { openRepository } from '../../daemon/backup/target.ts'
import { LevelKvStore } from '../../daemon/storage/level-kv-store.ts'
import { MemoryKvStore } from '../../daemon/storage/memory-kv-store.ts'
import { EntityStore } from '../../daemon/store/entity-store.ts'
import { quietLogger, randomWrites, restoredState, seededRandom, stateOf, type EntityState } from '../helpers/backup.ts'
import { repositoryKinds } from '../helpers/s3.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * Files backups: the node's LevelDB files as of one moment (the store's checkpoint), restored as
 * they were into a new data dir, or read as a store by a live restore, a synthetic full and a
 * deep verify.
 */

const tempDir = useTempDirs('all')
const kinds = repositoryKinds('files')

async function levelStore(): Promise<{ store: EntityStore; db: string }> {
  const db = join(await tempDir('meshsync-node-'), 'db')
  const store = new EntityStore({ kv: new LevelKvStore(db, { writeBufferSize: 256 * 1024 }), nodeId: 'f1a2b3c4d5e60718', logger: quietLogger })
  await store.open()
  return { store, db }
}

/** Enough entities for several table files (a small write buffer), texts and deletes among them. */
async function fill(store: EntityStore, seed: number): Promise<void> {
  for (let i = 0; i < 4000; i += 500) {
    await store.write(Array.from({ length: 500 }, (_, k) => ({ op: 'put' as const, ns: (i + k) % 3 === 0 ? 'notes' : 'items', id: `x${i + k}`, value: { n: i + k, pad: 'p'.repeat(100) } })))
  }
  await randomWrites(store, seededRandom(seed), 300)
}

/** A source that records the state at the checkpoint, read from the very view the backup uses. */
function capturing(store: EntityStore): FilesSource & { captured: { state: Record<string, EntityState>; vv: Record<string, number> }[] } {
  const captured: { state: Record<string, EntityState>; vv: Record<string, number> }[] = []
  return {
    nodeId: store.nodeId,
    captured,
    openCheckpoint: async () => {
      const c = await store.openCheckpoint()
      if (c) captured.push({ state: await stateOf(c.view.entities()), vv: { ...c.view.vv } })
      return c
    },
  }
}

describe('a files backup', () => {
  it('restores into a new data dir to the store as it was, with its counts, vector and a new identity', async () => {
    const { store, db } = await levelStore()
    await fill(store, 3)
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const source = capturing(store)
    const m = await createFilesBackup(repo, source)
    expect(m.method).toBe('files')
    expect(m.type).toBe('full')
    expect(m.files?.some((f) => f.name.endsWith('.ldb'))).toBe(true)
    // Counted from the store's counts and tombstones: what an entity full of the same moment counts.
    const entityFull = await createBackup(repo, store, 'full')
    expect(m.namespaces).toEqual(entityFull.namespaces)
    expect(m.entities).toBe(entityFull.entities)
    expect(m.vv).toEqual(store.versionVector)
    // The checkpoint directory is gone; the live store still reads and writes.
    expect((await readdir(join(db, '..'))).filter((n) => n.includes('.checkpoint-'))).toEqual([])
    await store.write([{ op: 'put', ns: 'items', id: 'after', value: { late: true } }])
    expect((await store.get('items', 'after'))?.value).toEqual({ late: true })

    const { sealer } = await openSealer(repo, {})
    const into = join(await tempDir('meshsync-restore-'), 'node')
    const result = await restoreIntoDir(repo, sealer, await loadManifest(repo, m.id), into, { logger: quietLogger })
    expect(result.entities).toBe(m.entities)
    expect(result.nodeId).not.toBe(store.nodeId)
    expect((await stat(into)).mode & 0o777).toBe(0o700)
    const restored = await restoredState(into)
    const captured = source.captured[0] as { state: Record<string, EntityState>; vv: Record<string, number> }
    expect(Object.keys(captured.state).length).toBe(m.entities)
    expect(restored.state).toEqual(captured.state)
    expect(restored.vv).toEqual(captured.vv)
    expect(restored.state['items/after']).toBeUndefined()
    await store.close()
  })

  it('cuts the files into many small chunks, across file ends, and joins them back exactly', async () => {
    const { store } = await levelStore()
    await fill(store, 4)
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const source = capturing(store)
    // Chunks of 20 KiB: most files span several, and the chunks' buffers are reused many times over.
    const m = await createFilesBackup(repo, source, { chunkBytes: 20 * 1024 })
    const total = (m.files ?? []).reduce((n, f) => n + f.size, 0)
    expect(m.chunks.length).toBeGreaterThanOrEqual(Math.ceil(total / (20 * 1024)))
    expect(m.chunks.length).toBeGreaterThan(20)
    expect(await verifyBackup(repo, m)).toMatchObject({ ok: true, records: m.entities })
    const { sealer } = await openSealer(repo, {})
    const into = join(await tempDir('meshsync-restore-'), 'node')
    await restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })
    const restored = await restoredState(into)
    expect(restored.state).toEqual((source.captured[0] as { state: Record<string, EntityState> }).state)
    await store.close()
  })

  it('loses no write made while it is taken, and is the state of one moment', async () => {
    const { store } = await levelStore()
    await fill(store, 5)
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const source = capturing(store)
    const writes: Promise<unknown>[] = []
    let stop = false
    const writer = (async () => {
      for (let i = 0; !stop || i < 50; i++) {
        writes.push(store.write([{ op: 'put', ns: 'live', id: `w${i}`, value: { i } }]))
        await new Promise((r) => setTimeout(r, 1))
      }
    })()
    const m = await createFilesBackup(repo, source)
    stop = true
    await writer
    await Promise.all(writes)
    for (let i = 0; i < writes.length; i++) expect((await store.get('live', `w${i}`))?.value).toEqual({ i })
    const { sealer } = await openSealer(repo, {})
    const into = join(await tempDir('meshsync-restore-'), 'node')
    await restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })
    const restored = await restoredState(into)
    const captured = source.captured[0] as { state: Record<string, EntityState>; vv: Record<string, number> }
    expect(restored.state).toEqual(captured.state)
    expect(restored.vv).toEqual(m.vv)
    // Writes went on on both sides of the moment.
    const liveAtCheckpoint = Object.keys(captured.state).filter((k) => k.startsWith('live/')).length
    expect(liveAtCheckpoint).toBeGreaterThan(0)
    expect(liveAtCheckpoint).toBeLessThan(writes.length)
    await store.close()
  })

  it('verifies, deep too, and names the chunk or file that was damaged', async () => {
    const { store } = await levelStore()
    await fill(store, 7)
    const root = await tempDir('meshsync-repo-')
    const repo = openRepository(root)
    const m = await createFilesBackup(repo, store)
    const { sealer } = await openSealer(repo, {})
    const shallow = await verifyChain(repo, sealer, m)
    expect(shallow).toMatchObject({ ok: true, objects: m.chunks.length + 1, records: 0 })
    // verifyBackup is deep: the files opened as a database, every entity read.
    const deep = await verifyBackup(repo, m)
    expect(deep).toMatchObject({ ok: true, objects: m.chunks.length + 1, records: m.entities })

    // A chunk's stored bytes changed: its SHA-256 no longer matches.
    const chunk = join(root, 'sets', m.id, (m.chunks[0] as { name: string }).name)
    const bytes = await readFile(chunk)
    bytes.writeUInt8((bytes.at(-1) as number) ^ 0xff, bytes.length - 1)
    await writeFile(chunk, bytes)
    await expect(verifyBackup(repo, m)).rejects.toMatchObject({ code: 'BACKUP_CORRUPT', object: (m.chunks[0] as { name: string }).name })
    const into = join(await tempDir('meshsync-restore-'), 'node')
    await expect(restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })).rejects.toMatchObject({ code: 'BACKUP_CORRUPT', object: (m.chunks[0] as { name: string }).name })
    expect(existsSync(into)).toBe(false)
    await store.close()
  })

  it('refuses a manifest whose file list is damaged or names a path outside the database', async () => {
    const { store } = await levelStore()
    await fill(store, 9)
    const root = await tempDir('meshsync-repo-')
    const repo = openRepository(root)
    const m = await createFilesBackup(repo, store)
    const manifestPath = join(root, 'sets', m.id, 'manifest.json')
    const original = await readFile(manifestPath, 'utf8')
    const edit = async (change: (files: { name: string; sha256: string }[]) => void): Promise<void> => {
      const parsed = JSON.parse(original) as { files: { name: string; sha256: string }[] }
      change(parsed.files)
      await writeFile(manifestPath, JSON.stringify(parsed))
    }
    await edit((files) => {
      ;(files[0] as { name: string }).name = '../escape.ldb'
    })
    await expect(loadManifest(repo, m.id)).rejects.toMatchObject({ code: 'BACKUP_CORRUPT' })
    // A file's recorded digest changed: the file read back no longer matches it.
    const last = (JSON.parse(original) as { files: { name: string }[] }).files.at(-1) as { name: string }
    await edit((files) => {
      ;(files.at(-1) as { sha256: string }).sha256 = '0'.repeat(64)
    })
    await expect(verifyBackup(repo, await loadManifest(repo, m.id))).rejects.toMatchObject({ code: 'BACKUP_CORRUPT', object: last.name })
    // A file's recorded size changed: the chunks no longer hold exactly the files, and a restore
    // fails and leaves nothing behind.
    await edit((files) => {
      ;(files[0] as unknown as { size: number }).size -= 1
    })
    const { sealer } = await openSealer(repo, {})
    const into = join(await tempDir('meshsync-restore-'), 'node')
    await expect(restoreIntoDir(repo, sealer, await loadManifest(repo, m.id), into, { logger: quietLogger })).rejects.toMatchObject({ code: 'BACKUP_CORRUPT' })
    expect(existsSync(into)).toBe(false)
    await store.close()
  })

  it('is read as a store by a live restore and a synthetic full, and incrementals chain from entity sets only', async () => {
    const { store } = await levelStore()
    await fill(store, 11)
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const { sealer } = await openSealer(repo, { create: true })
    const files = await createFilesBackup(repo, store)
    const before = await stateOf(store.entities())

    // A synthetic full made from it holds the same entities, as records.
    const synthetic = await synthesizeFull(repo, files)
    expect(synthetic.method).toBeUndefined()
    expect(synthetic.entities).toBe(files.entities)
    const into = join(await tempDir('meshsync-restore-'), 'node')
    await restoreIntoDir(repo, sealer, synthetic, into, { logger: quietLogger })
    expect((await restoredState(into)).state).toEqual(before)

    // A live restore of one namespace from the files set undoes later changes there.
    await store.write([{ op: 'put', ns: 'notes', id: 'x0', value: { changed: true } }])
    await restoreIntoLive(repo, sealer, files, store, { scope: { ns: 'notes' } })
    expect((await store.get('notes', 'x0'))?.value).toEqual({ n: 0, pad: 'p'.repeat(100) })

    // An incremental is taken against the node's last entity set (the synthetic full), never a
    // files set, even a later one.
    await createFilesBackup(repo, store)
    const inc = await createBackup(repo, store, 'incremental')
    expect(inc.type).toBe('incremental')
    expect(inc.parent).toBe(synthetic.id)
    await store.close()
  })

  it('is taken on a schedule when the schedule says method files', async () => {
    const { store } = await levelStore()
    await store.write([{ op: 'put', ns: 'items', id: 'a', value: { n: 1 } }])
    const target = await tempDir('meshsync-repo-')
    const service = new BackupService({ store, logger: quietLogger }, { target, schedules: [{ type: 'full', method: 'files', everyMs: 50 }] })
    service.start()
    try {
      await waitFor(async () => (await service.list()).sets.length >= 1, { timeout: 10_000 })
    } finally {
      await service.stop()
    }
    const { sets } = await service.list()
    expect(sets.every((set) => set.method === 'files' && set.type === 'full')).toBe(true)
    await store.close()
  })

  it('is refused with a clear error where the store keeps no files, and a crash leaves no checkpoint behind', async () => {
    const memory = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'a1a2b3c4d5e60718', logger: quietLogger })
    await memory.open()
    const repo = openRepository(await tempDir('meshsync-repo-'))
    await expect(createFilesBackup(repo, memory)).rejects.toMatchObject({ code: 'FILES_BACKUP_UNSUPPORTED' })
    await memory.close()

    const root = await tempDir('meshsync-node-')
    const stale = join(root, 'db.checkpoint-0123456789ab')
    await mkdir(stale)
    await writeFile(join(stale, '000005.ldb'), 'left by a crash')
    const kv = new LevelKvStore(join(root, 'db'))
    await kv.open()
    expect(existsSync(stale)).toBe(false)
    await kv.close()
  })
})

describe.each(kinds)('a files backup in a %s repository, encrypted', (_kind, make) => {
  it('verifies and restores into a new data dir to the store as it was', async () => {
    const { store } = await levelStore()
    await fill(store, 13)
    const repo = await make()
    const source = capturing(store)
    const options = { passphrase: 'correct horse', kdf: { N: 1024, r: 8, p: 1 } }
    const m = await createFilesBackup(repo, source, { ...options, chunkBytes: 256 * 1024 })
    expect(m.encrypted).toBe(true)
    expect(await verifyBackup(repo, m, { passphrase: options.passphrase })).toMatchObject({ ok: true, records: m.entities })
    await expect(openSealer(repo, {})).rejects.toMatchObject({ code: 'PASSPHRASE_REQUIRED' })
    const { sealer } = await openSealer(repo, { passphrase: options.passphrase })
    const into = join(await tempDir('meshsync-restore-'), 'node')
    await restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })
    expect((await restoredState(into)).state).toEqual((source.captured[0] as { state: Record<string, EntityState> }).state)
    await repo.close()
    await store.close()
  })
})
