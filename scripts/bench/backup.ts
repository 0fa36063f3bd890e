/**
 * `node scripts/bench/backup.ts [--entities N] [--dir DIR]`: backup benchmarks of issue 5 with
 * their baselines in the same run. Standalone (not yet wired into `npm run bench`).
 *
 * - full backup time of N entities vs `tar | zstd -3` of the LevelDB directory (target >= 0.5x);
 * - bytes an incremental adds after 1% of the entities changed vs what `restic backup` of the
 *   LevelDB directory adds for the same change (target <= 0.2x; skipped when restic is missing);
 * - restore throughput (entities/s into a new data dir).
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { createBackup } from '../../daemon/backup/create.ts'
import { DirRepository } from '../../daemon/backup/dir-repository.ts'
import { restoreIntoDir } from '../../daemon/backup/restore.ts'
import { openSealer } from '../../daemon/backup/seal.ts'
import { LevelKvStore } from '../../daemon/storage/level-kv-store.ts'
import { EntityStore, type LocalOp } from '../../daemon/store/entity-store.ts'

const { values } = parseArgs({ options: { entities: { type: 'string' }, dir: { type: 'string' } } })
const N = Number(values.entities ?? 100_000)
const logger = pino({ level: 'silent' })

async function dirBytes(dir: string): Promise<number> {
  const out = execFileSync('du', ['-sb', dir], { encoding: 'utf8' })
  return Number(out.split('\t')[0])
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(values.dir ?? tmpdir(), 'meshsync-bench-backup-'))
  try {
    const dbDir = join(root, 'node', 'db')
    let store = new EntityStore({ kv: new LevelKvStore(dbDir), nodeId: 'abcdef0123456789', logger })
    await store.open()
    for (let i = 0; i < N; i += 2000) {
      const ops: LocalOp[] = []
      for (let j = i; j < Math.min(N, i + 2000); j++) ops.push({ op: 'put', ns: 'inv', id: `item-${String(j).padStart(7, '0')}`, value: { sku: j, qty: j % 97, site: 'north', note: `item number ${j}` } })
      await store.write(ops)
    }
    const repo = new DirRepository(join(root, 'repo'))

    // The baseline copies a quiet directory: close the store (no compaction running), reopen after.
    await store.close()
    let t = process.hrtime.bigint()
    execFileSync('sh', ['-c', `tar -C ${JSON.stringify(join(root, 'node'))} -cf - db | zstd -3 -q -o ${JSON.stringify(join(root, 'db.tar.zst'))}`])
    const tarSeconds = seconds(t)
    const tarBytes = (await stat(join(root, 'db.tar.zst'))).size
    store = new EntityStore({ kv: new LevelKvStore(dbDir), nodeId: 'abcdef0123456789', logger })
    await store.open()

    t = process.hrtime.bigint()
    const full = await createBackup(repo, store, 'full')
    const fullSeconds = seconds(t)

    const hasRestic = spawnSync('restic', ['version']).status === 0
    const resticRepo = join(root, 'restic')
    const resticEnv = { ...process.env, RESTIC_PASSWORD: 'bench', RESTIC_REPOSITORY: resticRepo }
    if (hasRestic) {
      execFileSync('restic', ['init', '-q'], { env: resticEnv })
      execFileSync('restic', ['backup', '-q', dbDir], { env: resticEnv })
    }
    const resticBefore = hasRestic ? await dirBytes(resticRepo) : 0

    const changed = Math.floor(N / 100)
    for (let i = 0; i < changed; i += 1000) {
      const ops: LocalOp[] = []
      for (let j = i; j < Math.min(changed, i + 1000); j++) ops.push({ op: 'patch', ns: 'inv', id: `item-${String(j * 100).padStart(7, '0')}`, value: { qty: -1 } })
      await store.write(ops)
    }
    t = process.hrtime.bigint()
    const inc = await createBackup(repo, store, 'incremental')
    const incSeconds = seconds(t)
    let resticAdded: number | undefined
    if (hasRestic) {
      execFileSync('restic', ['backup', '-q', dbDir], { env: resticEnv })
      resticAdded = (await dirBytes(resticRepo)) - resticBefore
    }
    await store.close()

    const { sealer } = await openSealer(repo, {})
    t = process.hrtime.bigint()
    const restored = await restoreIntoDir(repo, sealer, inc, join(root, 'restored'), { logger })
    const restoreSeconds = seconds(t)

    const report = {
      entities: N,
      full: { seconds: fullSeconds, bytes: full.bytes, tarZstdSeconds: tarSeconds, tarZstdBytes: tarBytes, speedVsTarZstd: tarSeconds / fullSeconds },
      incremental: { changed, seconds: incSeconds, bytes: inc.bytes, records: inc.records, resticAddedBytes: resticAdded ?? null, ratioVsRestic: resticAdded ? inc.bytes / resticAdded : null },
      restore: { seconds: restoreSeconds, entities: restored.entities, entitiesPerSecond: restored.entities / restoreSeconds },
    }
    console.log(JSON.stringify(report, null, 2))
    if (!hasRestic) console.log('restic: not installed (Debian package `restic`); its baseline was skipped')
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

await main()
