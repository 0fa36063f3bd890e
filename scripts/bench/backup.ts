/**
 * Backups (issue 5), each figure next to a baseline measured in the same run:
 *
 * - a full backup of N entities vs `tar | zstd -3` of the node's LevelDB directory (speed ratio,
 *   target >= 0.5x); both write their output durably (fsync);
 * - bytes an incremental adds after 1% of the entities changed vs the bytes `restic backup` of the
 *   LevelDB directory adds for the same change (target <= 0.2x; "restic not installed" without
 *   the Debian package `restic`, never an npm dependency); restic is run on the directory as it is
 *   right after the change (the change in LevelDB's log), and, for information, once more after
 *   LevelDB compacted the change into its tables;
 * - restore throughput (the chain full + incremental into a new data dir) next to unpacking the
 *   tarball (`zstd -d | tar -x`);
 * - the entity method's ceilings on the same data: reading every entity from a snapshot (what a
 *   full reads, nothing written) and raw classic-level writing the restored store's entries
 *   (what a restore writes, nothing read from a backup), each next to its tar baseline;
 * - the files method (the LevelDB files as of one moment): its backup and restore, each next to
 *   tar | zstd and zstd -d | tar -x of the same directory.
 *
 * Each measured operation starts after a full garbage collection, so that what the benchmark's
 * own checks left on the heap is not collected inside it.
 *
 * Every run checks before it reports: entity counts of the sets, the restored store's entities
 * (a hash over every key, record, version vector and deleted flag, equal to the node's at the
 * incremental) and, on a sample that includes changed entities, their Yjs state vectors and records.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { closeSync, fsyncSync, openSync } from 'node:fs'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { performance } from 'node:perf_hooks'
import { ClassicLevel } from 'classic-level'
import { pino } from 'pino'
import * as Y from 'yjs'
import { createEntityDoc, readRecord, type VersionVector } from '../../crdt/index.ts'
import { createFilesBackup } from '../../daemon/backup/create-files.ts'
import { createBackup } from '../../daemon/backup/create.ts'
import { DirRepository } from '../../daemon/backup/dir-repository.ts'
import { restoreIntoDir } from '../../daemon/backup/restore.ts'
import { openSealer } from '../../daemon/backup/seal.ts'
import { dataDirLayout } from '../../daemon/data-dir.ts'
import type { KvBatchOp } from '../../daemon/storage/kv-store.ts'
import { LevelKvStore } from '../../daemon/storage/level-kv-store.ts'
import { EntityStore, type LocalOp } from '../../daemon/store/entity-store.ts'
import { check } from './checks.ts'
import { RawLevel } from './level-baseline.ts'
import { sampleIndexes } from './records.ts'
import { summarize } from './stats.ts'
import { ratioAtMostFigure, ratioFigure, unavailableFigure, type Benchmark, type BenchOptions, type BenchResult, type Figure } from './types.ts'

const NS = 'inv'
const NODE = 'abcdef0123456789'
const CHANGED_SHARE = 0.01
const SPEED_TARGET = 0.5
const BYTES_TARGET = 0.2
const SAMPLES = 100
/** Entries per batch of the restore ceiling: the restore's loader writes 2,000 entities of 3 entries each per batch. */
const RESTORE_BATCH = 6000
const logger = pino({ level: 'silent' })

const entityId = (i: number): string => `item-${String(i).padStart(7, '0')}`

/** Entities of the backup benchmark; `--backup-entities` overrides. */
export function backupEntityCount(options: BenchOptions, override?: number): number {
  return override ?? (options.full ? 300_000 : 100_000)
}

interface Run {
  readonly tarMs: number
  readonly tarBytes: number
  readonly fullMs: number
  readonly fullBytes: number
  readonly changed: number
  readonly incMs: number
  /** Bytes of the files the incremental added to the repository (manifest, index, chunks). */
  readonly incBytes: number
  readonly incRecords: number
  readonly resticBytes: number | null
  readonly resticCompactedBytes: number | null
  readonly restoreMs: number
  readonly untarMs: number
  readonly restored: number
  /** The entity full's ceiling: reading what it reads (every entity's meta and state, undecoded), nothing encoded or written. */
  readonly readAllMs: number
  /** The entity restore's ceiling: raw classic-level writing the entries the restore wrote, in key order. */
  readonly writeAllMs: number
  readonly restoredEntries: number
  /** The files backup of the store at the start of the run and its restore, each with its baseline. */
  readonly files: FilesRun
}

interface FilesRun {
  readonly tarMs: number
  readonly backupMs: number
  readonly bytes: number
  readonly restoreMs: number
  readonly untarMs: number
}

/** Bytes of every file under `dir` (apparent sizes, as an object store bills them). */
async function fileBytes(dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size
  }
  return total
}

function hasTool(name: string, args: readonly string[]): boolean {
  return spawnSync(name, args, { stdio: 'ignore' }).status === 0
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r+')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** A hash over every entity's key, record, version vector and deleted flag (no Yjs decoding). */
async function entitiesHash(store: EntityStore): Promise<{ hash: string; count: number }> {
  const h = createHash('sha256')
  let count = 0
  for await (const e of store.entities()) {
    h.update(`${e.ns}\u0000${e.id}\u0000${JSON.stringify(e.meta.value)}\u0000${JSON.stringify(e.meta.vv)}\u0000${e.meta.deleted}\n`)
    count++
  }
  return { hash: h.digest('hex'), count }
}

/** Record and Yjs state vector of an entity, from its stored state. */
async function yjsView(store: EntityStore, id: string): Promise<string> {
  const state = await store.entityState(NS, id)
  check(state !== undefined, `${NS}/${id} has no state`)
  const doc = createEntityDoc(state)
  const view = JSON.stringify({ record: readRecord(doc), sv: Buffer.from(Y.encodeStateVector(doc)).toString('base64') })
  doc.destroy()
  return view
}

/**
 * Closes the store, has LevelDB compact everything into its tables, reopens it: a directory with
 * no compaction left to run, so what restic adds after a change is the change's doing.
 */
async function settle(store: EntityStore, db: string): Promise<void> {
  await store.close()
  const level = new ClassicLevel(db)
  await level.open()
  await level.compactRange('\u0000', '\uffff')
  await level.close()
  await store.open()
}

async function oneRun(store: EntityStore, dirs: { root: string; node: string; db: string }, size: number, round: number, restic: boolean, options: BenchOptions): Promise<Run> {
  const runDir = await mkdtemp(join(dirs.root, `run${round}-`))
  try {
    // First the files backup and its restore, each next to its baseline, on the node as the last
    // run (or the set-up) left it; then the entity sets.
    const files = await filesRun(store, new DirRepository(join(runDir, 'files-repo')), dirs, runDir, size)
    const tarball = join(runDir, 'db.tar.zst')
    const tarMs = tarZstd(dirs.node, tarball)
    const tarBytes = (await stat(tarball)).size

    const repoDir = join(runDir, 'repo')
    const repo = new DirRepository(repoDir)
    collectGarbage()
    let t = performance.now()
    const full = await createBackup(repo, store, 'full')
    const fullMs = performance.now() - t
    check(full.entities === size && full.records === size, `the full holds ${full.entities} entities in ${full.records} records, expected ${size}`)
    const readAllMs = await readAll(store, size)

    // restic's baseline snapshot of the same directory.
    const resticEnv = { ...process.env, RESTIC_PASSWORD: 'bench', RESTIC_REPOSITORY: join(runDir, 'restic'), RESTIC_CACHE_DIR: join(runDir, 'restic-cache') }
    if (restic) {
      execFileSync('restic', ['init', '-q'], { env: resticEnv })
      execFileSync('restic', ['backup', '-q', dirs.db], { env: resticEnv })
    }

    // 1% of the entities change (spread evenly, a different set each run).
    const stride = Math.round(1 / CHANGED_SHARE)
    const changedIdx = Array.from({ length: Math.floor(size * CHANGED_SHARE) }, (_, k) => k * stride + (round % stride))
    for (let i = 0; i < changedIdx.length; i += 1000) {
      await store.write(changedIdx.slice(i, i + 1000).map((j): LocalOp => ({ op: 'patch', ns: NS, id: entityId(j), value: { qty: -1 - round } })))
    }
    const repoBefore = await fileBytes(repoDir)
    collectGarbage()
    t = performance.now()
    const inc = await createBackup(repo, store, 'incremental')
    const incMs = performance.now() - t
    const incBytes = (await fileBytes(repoDir)) - repoBefore
    check(inc.type === 'incremental' && inc.parent === full.id, `the second backup is a ${inc.type} of ${inc.parent}, expected an incremental of ${full.id}`)
    check(inc.records === changedIdx.length && inc.entities === size, `the incremental holds ${inc.records} records of ${inc.entities} entities, expected ${changedIdx.length} of ${size}`)

    let resticBytes: number | null = null
    let resticCompactedBytes: number | null = null
    const source = await entitiesHash(store)
    const samples = [...sampleIndexes(changedIdx.length, Math.min(SAMPLES / 2, changedIdx.length)).map((k) => changedIdx[k] as number), ...sampleIndexes(size, SAMPLES / 2)].map(entityId)
    const sourceViews = await Promise.all(samples.map((id) => yjsView(store, id)))
    let resticAfter = 0
    if (restic) {
      const before = await fileBytes(join(runDir, 'restic'))
      execFileSync('restic', ['backup', '-q', dirs.db], { env: resticEnv })
      resticAfter = await fileBytes(join(runDir, 'restic'))
      resticBytes = resticAfter - before
    }
    // LevelDB compacts the change into its tables; every run starts from that steady state.
    await settle(store, dirs.db)
    if (restic) {
      execFileSync('restic', ['backup', '-q', dirs.db], { env: resticEnv })
      resticCompactedBytes = (await fileBytes(join(runDir, 'restic'))) - resticAfter
    }

    // Restore of the chain into a new data dir, next to unpacking the tarball.
    const { sealer } = await openSealer(repo, {})
    const into = join(runDir, 'restored')
    collectGarbage()
    t = performance.now()
    const restored = await restoreIntoDir(repo, sealer, inc, into, { logger })
    const restoreMs = performance.now() - t
    const untarMs = untarZstd(tarball, join(runDir, 'untar'))
    await checkRestored(into, inc.vv, source.hash, size, 'the chain', async (back) => {
      for (const [k, id] of samples.entries()) check((await yjsView(back, id)) === sourceViews[k], `${NS}/${id} restores to ${await yjsView(back, id)}, the node holds ${sourceViews[k]}`)
    })
    const { ms: writeAllMs, entries: restoredEntries } = await writeAll(dataDirLayout(into).db, runDir)
    await repo.close()
    const run: Run = {
      tarMs,
      tarBytes,
      fullMs,
      fullBytes: full.bytes,
      changed: changedIdx.length,
      incMs,
      incBytes,
      incRecords: inc.records,
      resticBytes,
      resticCompactedBytes,
      restoreMs,
      untarMs,
      restored: restored.entities,
      readAllMs,
      writeAllMs,
      restoredEntries,
      files,
    }
    options.log(
      `  run ${round + 1}/${options.runs}: full ${fullMs.toFixed(0)} ms (tar+zstd ${tarMs.toFixed(0)} ms = ${(tarMs / fullMs).toFixed(3)}x), ` +
        `incremental ${incBytes.toLocaleString('en-US')} B in ${incMs.toFixed(0)} ms` +
        (resticBytes !== null ? ` (restic +${resticBytes.toLocaleString('en-US')} B = ${(incBytes / resticBytes).toFixed(3)}x; after compaction +${(resticCompactedBytes ?? 0).toLocaleString('en-US')} B)` : ' (restic not installed)') +
        `, restore ${(size / (restoreMs / 1000)).toFixed(0)} entities/s (untar ${untarMs.toFixed(0)} ms); ` +
        `ceilings of the entity method: reading every entity ${readAllMs.toFixed(0)} ms, writing the restored entries ${writeAllMs.toFixed(0)} ms; ` +
        `files backup ${files.backupMs.toFixed(0)} ms (tar+zstd ${files.tarMs.toFixed(0)} ms = ${(files.tarMs / files.backupMs).toFixed(3)}x), ` +
        `its restore ${files.restoreMs.toFixed(0)} ms (untar ${files.untarMs.toFixed(0)} ms = ${(files.untarMs / files.restoreMs).toFixed(3)}x)`,
    )
    return run
  } finally {
    await rm(runDir, { recursive: true, force: true })
  }
}

/** V8's `gc`, taken once: a new VM context per call would itself be garbage left right before a measure. */
let gc: (() => void) | undefined

/**
 * A full garbage collection, before each measured operation: what the benchmark itself left
 * (entities hashed and compared, hundreds of MB) is otherwise collected during the next one (a
 * files backup took 98-124 ms right after hashing the node, 78-96 ms without).
 */
function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
}

/**
 * What no entity full can beat: reading every entity's meta and state from one snapshot, as the
 * full does (undecoded, in key order), with nothing encoded, compressed or written; ms.
 */
async function readAll(store: EntityStore, size: number): Promise<number> {
  const snapshot = await store.openSnapshot()
  try {
    collectGarbage()
    const t = performance.now()
    let n = 0
    for await (const batch of snapshot.rawEntities()) n += batch.length
    const ms = performance.now() - t
    check(n === size, `the snapshot read ${n} entities, expected ${size}`)
    return ms
  } finally {
    await snapshot.close()
  }
}

/**
 * What no entity restore can beat: raw classic-level writing every entry the restore wrote into
 * `db` into a new database, in key order (LevelDB's easiest order), RESTORE_BATCH entries per
 * unsynced batch and the last batch synced, as the restore's loader does; ms (the writes alone:
 * each batch is read from `db` before it is written, not measured, so that only one batch of
 * entries is held at a time) and entries.
 */
async function writeAll(db: string, runDir: string): Promise<{ ms: number; entries: number }> {
  const source = new ClassicLevel<string, Uint8Array>(db, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await source.open()
  const raw = await RawLevel.openBytes(runDir)
  try {
    let ms = 0
    let entries = 0
    const write = async (ops: KvBatchOp[], sync: boolean): Promise<void> => {
      const t = performance.now()
      await raw.db.batch(ops, { sync })
      ms += performance.now() - t
      entries += ops.length
    }
    // One entry at a time: nextv(n) stops at 16 KiB, which would make batches of ~100 entries.
    let ops: KvBatchOp[] = []
    for await (const [key, value] of source.iterator()) {
      if (ops.length === RESTORE_BATCH) {
        await write(ops, false)
        ops = []
      }
      ops.push({ type: 'put', key, value })
    }
    await write(ops, true)
    const held = await raw.count({ gte: '', lt: '\uffff' })
    check(held === entries, `classic-level holds ${held} entries, ${entries} were written`)
    return { ms, entries }
  } finally {
    await source.close()
    await raw.destroy()
  }
}

/** The baseline: the node's LevelDB directory through tar and zstd -3 into `tarball`, written durably; ms. */
function tarZstd(nodeDir: string, tarball: string): number {
  const t = performance.now()
  execFileSync('sh', ['-c', `tar -C ${JSON.stringify(nodeDir)} -cf - db | zstd -3 -q -o ${JSON.stringify(tarball)}`])
  fsyncFile(tarball)
  return performance.now() - t
}

/** The baseline's restore: `tarball` through zstd -d and tar -x into `dir`, synced; ms. */
function untarZstd(tarball: string, dir: string): number {
  execFileSync('mkdir', ['-p', dir])
  const t = performance.now()
  execFileSync('sh', ['-c', `zstd -d -q -c ${JSON.stringify(tarball)} | tar -C ${JSON.stringify(dir)} -xf - && sync -f ${JSON.stringify(dir)}`])
  return performance.now() - t
}

/**
 * Opens the store restored into data dir `into` and checks it against the node: its vector is
 * `vv`, it holds `size` entities hashing to `hash`, and whatever `more` checks.
 */
async function checkRestored(into: string, vv: VersionVector, hash: string, size: number, what: string, more?: (back: EntityStore) => Promise<void>): Promise<void> {
  const back = new EntityStore({ kv: new LevelKvStore(dataDirLayout(into).db), nodeId: '0000000000000000', logger })
  await back.open()
  try {
    check(JSON.stringify(back.versionVector) === JSON.stringify(vv), `the node vector restored from ${what} ${JSON.stringify(back.versionVector)} differs from the backup's ${JSON.stringify(vv)}`)
    const got = await entitiesHash(back)
    check(got.count === size && got.hash === hash, `the store restored from ${what} holds ${got.count} entities hashing to ${got.hash}, the node ${size} hashing to ${hash}`)
    await more?.(back)
  } finally {
    await back.close()
  }
}

/**
 * A files backup of the store as it is (the node's LevelDB files as of one moment) and its restore
 * into a new data dir, each next to its baseline on the same directory: tar | zstd -3 right
 * before the backup, zstd -d | tar -x right after the restore. The restored store must hash to
 * the node's, hashed after both are measured (nothing writes to the node meanwhile) so that the
 * hashing's garbage is not collected during them.
 */
async function filesRun(store: EntityStore, repo: DirRepository, dirs: { node: string }, runDir: string, size: number): Promise<FilesRun> {
  const tarball = join(runDir, 'files-baseline.tar.zst')
  const tarMs = tarZstd(dirs.node, tarball)
  collectGarbage()
  let t = performance.now()
  const m = await createFilesBackup(repo, store)
  const backupMs = performance.now() - t
  check(m.method === 'files' && m.entities === size, `the files backup holds ${m.entities} entities, expected ${size}`)
  const { sealer } = await openSealer(repo, {})
  const into = join(runDir, 'restored-files')
  collectGarbage()
  t = performance.now()
  await restoreIntoDir(repo, sealer, m, into, { logger })
  const restoreMs = performance.now() - t
  const untarMs = untarZstd(tarball, join(runDir, 'untar-files'))
  const { hash } = await entitiesHash(store)
  await checkRestored(into, m.vv, hash, size, 'the files backup')
  return { tarMs, backupMs, bytes: m.bytes, restoreMs, untarMs }
}

export function backupBench(entitiesOverride?: number): Benchmark {
  return {
    name: 'backup',
    title: 'backups: full backup vs tar | zstd of the LevelDB dir, incremental after 1% changed vs restic, restore throughput',
    async run(options: BenchOptions): Promise<BenchResult> {
      check(hasTool('zstd', ['--version']) && hasTool('tar', ['--version']), 'tar and zstd are needed for the baseline')
      const size = backupEntityCount(options, entitiesOverride)
      const restic = hasTool('restic', ['version'])
      const root = await mkdtemp(join(options.baseDir, 'backup-'))
      const dirs = { root, node: join(root, 'node'), db: join(root, 'node', 'db') }
      const store = new EntityStore({ kv: new LevelKvStore(dirs.db), nodeId: NODE, logger })
      const runs: Run[] = []
      try {
        await store.open()
        const started = performance.now()
        for (let i = 0; i < size; i += 2000) {
          const ops: LocalOp[] = []
          for (let j = i; j < Math.min(size, i + 2000); j++) ops.push({ op: 'put', ns: NS, id: entityId(j), value: { sku: j, qty: j % 97, site: 'north', note: `item number ${j}` } })
          await store.write(ops)
        }
        await settle(store, dirs.db)
        options.log(`  ${size.toLocaleString('en-US')} entities written and compacted in ${((performance.now() - started) / 1000).toFixed(1)} s (set-up, not measured)${restic ? '' : '; restic not installed'}`)
        // One files backup and restore first, not measured: the first one in a process runs cold
        // (its code not yet compiled by V8; 2-3 times the time of the next ones), where the
        // baselines are native binaries.
        const warmDir = await mkdtemp(join(root, 'warm-up-'))
        await filesRun(store, new DirRepository(join(warmDir, 'repo')), dirs, warmDir, size)
        await rm(warmDir, { recursive: true, force: true })
        for (let round = 0; round < options.runs; round++) runs.push(await oneRun(store, dirs, size, round, restic, options))
      } finally {
        await store.close().catch(() => undefined)
        await rm(root, { recursive: true, force: true })
      }
      const label = size.toLocaleString('en-US')
      const figures: Figure[] = [
        { label: `full backup of ${label} entities`, unit: 'ms', summary: summarize(runs.map((r) => r.fullMs)) },
        { label: 'tar | zstd -3 of the LevelDB dir', unit: 'ms', summary: summarize(runs.map((r) => r.tarMs)) },
        ratioFigure('full backup speed / tar | zstd speed', summarize(runs.map((r) => r.tarMs / r.fullMs)), SPEED_TARGET),
        { label: 'full backup bytes', unit: 'bytes', summary: summarize(runs.map((r) => r.fullBytes)) },
        { label: 'tar | zstd bytes', unit: 'bytes', summary: summarize(runs.map((r) => r.tarBytes)) },
        { label: `incremental after ${runs[0]?.changed ?? 0} changed: time`, unit: 'ms', summary: summarize(runs.map((r) => r.incMs)) },
        { label: 'incremental: bytes added', unit: 'bytes', summary: summarize(runs.map((r) => r.incBytes)) },
      ]
      if (restic) {
        figures.push(
          { label: 'restic backup of the LevelDB dir: bytes added', unit: 'bytes', summary: summarize(runs.map((r) => r.resticBytes as number)) },
          ratioAtMostFigure('incremental bytes / restic bytes', summarize(runs.map((r) => r.incBytes / (r.resticBytes as number))), BYTES_TARGET),
          { label: 'restic after LevelDB compacted the change: bytes added', unit: 'bytes', summary: summarize(runs.map((r) => r.resticCompactedBytes as number)) },
        )
      } else {
        figures.push(
          unavailableFigure('restic backup of the LevelDB dir: bytes added', 'bytes', 'restic not installed (Debian package restic)'),
          unavailableFigure('incremental bytes / restic bytes', 'x', 'restic not installed (Debian package restic)', { atMost: BYTES_TARGET }),
        )
      }
      figures.push(
        { label: 'restore of full + incremental into a new data dir', unit: 'entities/s', summary: summarize(runs.map((r) => r.restored / (r.restoreMs / 1000))) },
        { label: 'restore time', unit: 'ms', summary: summarize(runs.map((r) => r.restoreMs)) },
        { label: 'zstd -d | tar -x of the tarball', unit: 'ms', summary: summarize(runs.map((r) => r.untarMs)) },
        ratioFigure('restore speed / zstd -d | tar -x speed', summarize(runs.map((r) => r.untarMs / r.restoreMs)), SPEED_TARGET),
        { label: "entity full's ceiling: reading every entity's meta and state from a snapshot, nothing written", unit: 'ms', summary: summarize(runs.map((r) => r.readAllMs)) },
        { label: 'ratio tar | zstd / that read (the most an entity full could reach)', unit: 'x', summary: summarize(runs.map((r) => r.tarMs / r.readAllMs)) },
        { label: "entity restore's ceiling: classic-level writing the restored store's entries", unit: 'ms', summary: summarize(runs.map((r) => r.writeAllMs)) },
        { label: 'ratio zstd -d | tar -x / that write (the most an entity restore could reach)', unit: 'x', summary: summarize(runs.map((r) => r.untarMs / r.writeAllMs)) },
        { label: `files backup of ${label} entities`, unit: 'ms', summary: summarize(runs.map((r) => r.files.backupMs)) },
        { label: 'tar | zstd -3 of the LevelDB dir, right before it', unit: 'ms', summary: summarize(runs.map((r) => r.files.tarMs)) },
        ratioFigure('files backup speed / tar | zstd speed', summarize(runs.map((r) => r.files.tarMs / r.files.backupMs)), SPEED_TARGET),
        { label: 'files backup bytes', unit: 'bytes', summary: summarize(runs.map((r) => r.files.bytes)) },
        { label: 'restore of the files backup into a new data dir', unit: 'ms', summary: summarize(runs.map((r) => r.files.restoreMs)) },
        { label: 'zstd -d | tar -x of its tarball', unit: 'ms', summary: summarize(runs.map((r) => r.files.untarMs)) },
        ratioFigure('files restore speed / zstd -d | tar -x speed', summarize(runs.map((r) => r.files.untarMs / r.files.restoreMs)), SPEED_TARGET),
      )
      return {
        name: 'backup',
        title: this.title,
        params: {
          entities: size,
          changedShare: CHANGED_SHARE,
          runs: options.runs,
          restic: restic ? execFileSync('restic', ['version'], { encoding: 'utf8' }).trim() : null,
          setup:
            `an EntityStore on LevelDB holding ${size} entities {sku, qty, site, note} in one namespace; each run: ` +
            'tar | zstd -3 of the LevelDB dir, a files backup (the LevelDB files as of one moment) into a new directory repository, its restore into a new data dir, and zstd -d | tar -x of that tarball (one more files backup and restore before the first run, not measured: a warm-up); ' +
            'then tar | zstd -3 of the LevelDB dir again, a full backup into a new directory repository, ' +
            'restic init + backup of the LevelDB dir, 1% of the entities patched (qty; a different evenly spread set per run), an incremental backup, restic backup again, ' +
            'then (for information) LevelDB compacted and restic backup once more, then a restore of the chain into a new data dir and zstd -d | tar -x of the tarball',
          definitions: {
            speed: 'tar | zstd time / full backup time, same data, both outputs fsynced (a ratio of speeds); restore likewise: zstd -d | tar -x time (synced) / restore time',
            bytes: 'bytes added = total size of the files in the repository after minus before (apparent sizes; directory entries not counted), for the backup repository and for restic\'s',
            restic: 'restic\'s defaults (repository format 2, compression auto); its baseline snapshot is of a LevelDB dir with no compaction pending (compacted at set-up and after each run), and its second one is taken right after the change, which LevelDB then holds in its log; the "after compaction" row runs restic once more after LevelDB compacted the change into its tables (what restic adds on top when LevelDB gets to it)',
            restore: 'entities / time of restoreIntoDir of full + incremental (chain verified as read, entities bulk-loaded into LevelDB, synced)',
            ceilings:
              "what the entity method cannot beat, measured in each run on the same data: reading every entity's meta and state from one snapshot of the node's store (what a full reads, undecoded; nothing encoded, compressed or written), " +
              `and raw classic-level writing every entry of the restored store into a new database in key order, ${RESTORE_BATCH} per unsynced batch and the last batch synced (what a restore writes, without reading a backup); the ratios are tar | zstd and zstd -d | tar -x time over those times`,
            files:
              'createFilesBackup: writes wait while LevelDB is closed, its table files hard-linked aside and the rest copied, and reopened; then every file is cut into chunks, zstd -3 compressed and stored (fsynced) like any set; ' +
              'its restore: every file read back, checked against its SHA-256, written and fsynced into a new data dir, and the database opened once; both compared with tar | zstd of the same directory taken right before',
          },
          runsDetail: runs,
        },
        figures,
      }
    },
  }
}
