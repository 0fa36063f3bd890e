import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createBackup } from '../../daemon/backup/create.ts'
import { restoreIntoDir } from '../../daemon/backup/restore.ts'
import { openSealer } from '../../daemon/backup/seal.ts'
import { MemoryKvStore } from '../../daemon/storage/memory-kv-store.ts'
import type { KvBatchOptions, KvRange, KvSnapshot } from '../../daemon/storage/kv-store.ts'
import { EntityStore, type LocalOp } from '../../daemon/store/entity-store.ts'
import { quietLogger, restoredState, stateOf } from '../helpers/backup.ts'
import { repositoryKinds } from '../helpers/s3.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

const tempDir = useTempDirs('all')
const kinds = repositoryKinds('incremental')

/** A memory store that counts the entries its snapshots hand out (what a backup reads). */
class CountingKv extends MemoryKvStore {
  reads = 0

  override snapshot(): KvSnapshot {
    const inner = super.snapshot()
    const count = (n: number): void => {
      this.reads += n
    }
    return {
      get: async (key: string) => {
        count(1)
        return inner.get(key)
      },
      getMany: async (keys: readonly string[]) => {
        count(keys.length)
        return inner.getMany(keys)
      },
      iterate: (range?: KvRange) =>
        (async function* () {
          for await (const entry of inner.iterate(range)) {
            count(1)
            yield entry
          }
        })(),
      iterateBatches: (range?: KvRange, options?: KvBatchOptions) =>
        (async function* () {
          for await (const batch of inner.iterateBatches(range, options)) {
            count(batch.length)
            yield batch
          }
        })(),
      close: () => inner.close(),
    }
  }
}

const N = 3000
const id = (i: number): string => `item-${String(i).padStart(5, '0')}`

describe.each(kinds)('an incremental backup reads what changed, not the data set (%s)', (_kind, makeRepo) => {
  it('after a full of 3,000 entities, 30 patched entities cost about 30 entities of reads; creations and deletions are counted', async () => {
    const repo = await makeRepo()
    const kv = new CountingKv()
    const store = new EntityStore({ kv, nodeId: 'd1d2d3d4d5d6d7d8', logger: quietLogger })
    await store.open()
    for (let i = 0; i < N; i += 1000) {
      await store.write(Array.from({ length: 1000 }, (_, j): LocalOp => ({ op: 'put', ns: 'inv', id: id(i + j), value: { sku: i + j, qty: 1 } })))
    }
    await store.write([{ op: 'text', ns: 'docs', id: 'readme', name: 'body', splices: [[0, 0, 'a long text that only grows a little '.repeat(20)]] }])

    kv.reads = 0
    const full = await createBackup(repo, store, 'full')
    // The control: a full reads every entity (meta and state).
    expect(kv.reads).toBeGreaterThanOrEqual(2 * (N + 1))
    expect(full).toMatchObject({ entities: N + 1, records: N + 1, diffs: 0 })

    const patched = Array.from({ length: 30 }, (_, k) => id(k * 97))
    await store.write(patched.map((e): LocalOp => ({ op: 'patch', ns: 'inv', id: e, value: { qty: 2 } })))
    await store.write([{ op: 'text', ns: 'docs', id: 'readme', name: 'body', splices: [[0, 0, 'new first line. ']] }])
    kv.reads = 0
    const inc = await createBackup(repo, store, 'incremental')
    // Per changed entity: its feed entry, its change record, its meta and state; plus a few
    // metadata keys and one seek per namespace.
    expect(kv.reads).toBeLessThanOrEqual(31 * 4 + 20)
    expect(inc).toMatchObject({ type: 'incremental', parent: full.id, entities: N + 1, records: 31, diffs: 31 })
    expect(inc.namespaces).toEqual({ docs: { live: 1, deleted: 0 }, inv: { live: N, deleted: 0 } })
    // A diff of a grown text is a fraction of the text.
    expect(inc.bytes).toBeLessThan(full.bytes / 4)

    await store.write([
      ...Array.from({ length: 20 }, (_, k): LocalOp => ({ op: 'put', ns: 'new', id: `n${k}`, value: { k } })),
      ...Array.from({ length: 5 }, (_, k): LocalOp => ({ op: 'delete', ns: 'inv', id: id(k * 11 + 1) })),
    ])
    kv.reads = 0
    const second = await createBackup(repo, store, 'incremental')
    expect(kv.reads).toBeLessThanOrEqual(25 * 4 + 20)
    expect(second).toMatchObject({ parent: inc.id, entities: N + 21, records: 25 })
    expect(second.namespaces).toEqual({ docs: { live: 1, deleted: 0 }, inv: { live: N - 5, deleted: 5 }, new: { live: 20, deleted: 0 } })

    const { sealer } = await openSealer(repo, {})
    const into = join(await tempDir('meshsync-restore-'), 'node')
    expect(await restoreIntoDir(repo, sealer, second, into, { logger: quietLogger })).toMatchObject({ entities: N + 21, deleted: 5 })
    expect((await restoredState(into)).state).toEqual(await stateOf(store.entities()))
    await store.close()
    await repo.close()
  })
})
