import { describe, expect, it } from 'vitest'
import { createBackup } from '../../daemon/backup/create.ts'
import { prune, verifyBackup } from '../../daemon/backup/maintain.ts'
import { MemoryKvStore } from '../../daemon/storage/memory-kv-store.ts'
import { EntityStore } from '../../daemon/store/entity-store.ts'
import { quietLogger } from '../helpers/backup.ts'
import { HookedRepository } from '../helpers/backup-repository.ts'
import { repositoryKinds } from '../helpers/s3.ts'
import { waitFor } from '../helpers/wait-for.ts'

const kinds = repositoryKinds('locking')

/** A point an operation stops at until released. */
function gate(): { reached: Promise<void>; arrive: () => Promise<void>; release: () => void } {
  const reached = Promise.withResolvers<void>()
  const open = Promise.withResolvers<void>()
  return {
    reached: reached.promise,
    arrive: async () => {
      reached.resolve()
      await open.promise
    },
    release: () => open.resolve(),
  }
}

describe.each(kinds)('verify and prune share the repository lock (%s)', (_kind, makeRepo) => {
  it('verify holds a shared lock: other verifies run, a prune is refused or waits for it; a running prune refuses a verify', async () => {
    const repo = new HookedRepository(await makeRepo())
    const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'f1f2f3f4f5f6f7f8', logger: quietLogger })
    await store.open()
    await store.write([{ op: 'put', ns: 'items', id: 'a', value: { n: 1 } }])
    const old = await createBackup(repo, store, 'full')
    await store.write([{ op: 'put', ns: 'items', id: 'b', value: { n: 2 } }])
    const newer = await createBackup(repo, store, 'full')

    // A verify of the old set, held in the middle of reading its chunk.
    const held = gate()
    let lockWrites = 0
    repo.before = async (call, key) => {
      if (call === 'get' && key === `sets/${old.id}/${old.chunks[0]?.name}`) await held.arrive()
      if (call === 'put' && key.startsWith('locks/')) lockWrites++
    }
    const verifying = verifyBackup(repo, old)
    await held.reached
    expect(await verifyBackup(repo, newer)).toMatchObject({ ok: true, id: newer.id })
    // keep-last 1 would remove the set being verified.
    await expect(prune(repo, { last: 1 })).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
    lockWrites = 0
    const pruning = prune(repo, { last: 1 }, { lock: { waitMs: 60_000 } })
    await waitFor(() => lockWrites >= 2, { timeout: 20_000, message: 'the prune to try the lock twice' })
    expect(await repo.listSets()).toContain(old.id)
    held.release()
    expect(await verifying).toMatchObject({ ok: true, id: old.id })
    expect(await pruning).toMatchObject({ removed: [old.id] })
    expect(await repo.listSets()).toEqual([newer.id])

    // A prune held in the middle of deleting: a verify is refused.
    await store.write([{ op: 'put', ns: 'items', id: 'c', value: { n: 3 } }])
    const third = await createBackup(repo, store, 'full')
    const deleting = gate()
    repo.before = async (call, key) => {
      if (call === 'deleteSet' && key === newer.id) await deleting.arrive()
    }
    const pruning2 = prune(repo, { last: 1 })
    await deleting.reached
    await expect(verifyBackup(repo, third)).rejects.toMatchObject({ code: 'REPOSITORY_LOCKED' })
    deleting.release()
    expect(await pruning2).toMatchObject({ removed: [newer.id] })
    expect(await verifyBackup(repo, third)).toMatchObject({ ok: true })
    expect(await repo.list('locks/')).toEqual([])
    await store.close()
    await repo.close()
  })
})
