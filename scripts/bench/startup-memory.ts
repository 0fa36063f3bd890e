import { readFileSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { LevelKvStore } from '../../daemon/storage/index.ts'
import { EntityStore, type LocalOp } from '../../daemon/store/entity-store.ts'
import { check } from './checks.ts'
import { BenchDaemon } from './daemon.ts'
import { closedLoop } from './load.ts'
import { summarizeProfileDir, type ProfileSummary } from './profile.ts'
import { SocketClient } from './socket-client.ts'
import { summarize } from './stats.ts'
import type { Benchmark, BenchOptions, BenchResult, Figure } from './types.ts'

const NS = 'inv'
const BATCH = 1000
const RSS_TARGET_MB = 300
const START_TARGET_S = 5
const SWEEP_LOOPS = 8

const entityId = (i: number): string => `item-${String(i).padStart(7, '0')}`
const valueOf = (i: number): { sku: number; qty: number; site: string } => ({ sku: i, qty: i % 97, site: 'north' })

/** Resident memory of a process, in MB (from /proc/<pid>/status). */
export interface Rss {
  /** VmRSS: everything resident. */
  readonly rssMb: number
  /** VmHWM: the peak of VmRSS so far. */
  readonly peakMb: number
  /** RssAnon: private memory (JS heap, native allocations such as LevelDB's caches). */
  readonly anonMb: number
  /** RssFile: file pages mapped in (code, and the LevelDB table files LevelDB reads through mmap). */
  readonly fileMb: number
}

/** Resident memory of `pid` now and at its peak; null without /proc. */
export function processRss(pid: number): Rss | null {
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return null
  }
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  const kbs = [kb('VmRSS'), kb('VmHWM'), kb('RssAnon'), kb('RssFile')]
  if (!kbs.every(Number.isFinite)) return null
  const [rssMb, peakMb, anonMb, fileMb] = kbs.map((n) => n / 1024) as [number, number, number, number]
  return { rssMb, peakMb, anonMb, fileMb }
}

/**
 * Fills the data dir of a stopped daemon with `count` small entities through its store (the
 * daemon's own EntityStore on its LevelDB, under its node id), 1000 per atomic batch, two
 * batches in flight. Resolves with the seconds it took.
 */
async function load(dataDir: string, nodeId: string, count: number, log: (m: string) => void): Promise<number> {
  const store = new EntityStore({ kv: new LevelKvStore(join(dataDir, 'db')), nodeId, logger: pino({ level: 'silent' }) })
  await store.open()
  const started = performance.now()
  try {
    let next = 0
    let reported = 0
    const loop = async (): Promise<void> => {
      while (next < count) {
        const from = next
        next = Math.min(count, next + BATCH)
        const ops: LocalOp[] = []
        for (let i = from; i < next; i++) ops.push({ op: 'put', ns: NS, id: entityId(i), value: valueOf(i) })
        await store.write(ops)
        if (next - reported >= 250_000) {
          reported = next
          log(`    loaded ${next.toLocaleString('en-US')} entities in ${((performance.now() - started) / 1000).toFixed(0)} s`)
        }
      }
    }
    await Promise.all([loop(), loop()])
    check(store.entityCounts[NS] === count, `the store counts ${store.entityCounts[NS]} entities after the load, expected ${count}`)
  } finally {
    await store.close()
  }
  return (performance.now() - started) / 1000
}

/**
 * Waits for the daemon's "ready" line: `meshsync start` installs its SIGTERM handler in the same
 * tick as it prints it, a little after daemon.json appears (a SIGTERM in between kills it outright).
 */
async function signalReady(daemon: BenchDaemon): Promise<void> {
  const deadline = performance.now() + 30_000
  while (!/ ready\n/.test(daemon.output)) {
    check(performance.now() < deadline, `the daemon printed no ready line:\n${daemon.output}`)
    await sleep(5)
  }
}

interface Start {
  /** From the spawn until GET /v1/status answered on the Unix socket. */
  readonly apiMs: number
  /** From the spawn until a GET of an existing entity answered with its record. */
  readonly readyMs: number
  /** Resident memory right after the first read, and after the sweep (its peak: over the start and the sweep). */
  readonly atStart: Rss | null
  readonly afterSweep: Rss | null
  readonly sweepReadsPerSec: number
}

/** Starts the daemon on the loaded data dir, times it until it serves, then reads `sweep` random entities. */
async function startAndSweep(dataDir: string, options: BenchOptions, count: number, sweep: number, nodeFlags: readonly string[] = []): Promise<Start> {
  const socket = join(dataDir, 'api.sock')
  const probe = new SocketClient(socket, 1)
  const t0 = performance.now()
  const starting = BenchDaemon.start({ baseDir: options.baseDir, dataDir, nodeFlags, readyTimeoutMs: 120_000 })
  starting.catch(() => undefined) // awaited below; reported there
  let status: { namespaces?: Record<string, number> } | undefined
  let apiMs = 0
  const deadline = t0 + 120_000
  while (status === undefined) {
    try {
      const res = await probe.send('GET', '/v1/status')
      if (res.status === 200) {
        status = res.body as { namespaces?: Record<string, number> }
        apiMs = performance.now() - t0
      }
    } catch {
      // not listening yet
    }
    if (status === undefined) {
      if (performance.now() > deadline) break
      await sleep(5)
    }
  }
  const daemon = await starting
  const client = new SocketClient(socket, SWEEP_LOOPS)
  try {
    await signalReady(daemon)
    check(status !== undefined, `the daemon did not answer /v1/status within 120 s`)
    const first = Math.floor(Math.random() * count)
    const entity = (await probe.expect('GET', `/v1/ns/${NS}/entities/${entityId(first)}`, undefined)) as { value?: { sku?: unknown } }
    const readyMs = performance.now() - t0
    probe.close()
    check(entity.value?.sku === first, `${entityId(first)} reads back ${JSON.stringify(entity.value)}`)
    check(status.namespaces?.[NS] === count, `the daemon reports ${status.namespaces?.[NS]} entities in ${NS}, expected ${count}`)
    const atStart = processRss(daemon.pid)

    const s0 = performance.now()
    let wrong = 0
    await closedLoop(sweep, SWEEP_LOOPS, async () => {
      const i = Math.floor(Math.random() * count)
      const e = (await client.expect('GET', `/v1/ns/${NS}/entities/${entityId(i)}`, undefined)) as { value?: { sku?: unknown; qty?: unknown } }
      if (e.value?.sku !== i || e.value.qty !== i % 97) wrong++
    })
    const sweepMs = performance.now() - s0
    check(wrong === 0, `${wrong} of ${sweep} reads returned a wrong record`)
    const afterSweep = processRss(daemon.pid)
    return {
      apiMs,
      readyMs,
      atStart,
      afterSweep,
      sweepReadsPerSec: sweep / (sweepMs / 1000),
    }
  } finally {
    probe.close()
    client.close()
    const code = await daemon.stop({ keepDir: true })
    check(code === 0, `the daemon exited with code ${code} on SIGTERM:\n${daemon.output}`)
  }
}

export function startupMemory(entitiesOverride?: number): Benchmark {
  return {
    name: 'startup-memory',
    title: 'start-up time and RSS of a daemon whose data dir holds many small entities (spawn until it serves /v1/status and a read), and RSS after a sweep of random reads',
    async run(options: BenchOptions): Promise<BenchResult> {
      const count = entitiesOverride ?? (options.full ? 1_000_000 : 100_000)
      const sweep = Math.min(100_000, count)
      const fresh = await BenchDaemon.start({ baseDir: options.baseDir })
      const { dataDir } = fresh
      const nodeId = fresh.info.nodeId
      try {
        await signalReady(fresh)
        const code = await fresh.stop({ keepDir: true })
        check(code === 0, `the daemon exited with code ${code} on SIGTERM:\n${fresh.output}`)
        options.log(`  loading ${count.toLocaleString('en-US')} entities through the store (not measured)`)
        const loadS = await load(dataDir, nodeId, count, options.log)
        options.log(`  loaded in ${loadS.toFixed(1)} s (${Math.round(count / loadS).toLocaleString('en-US')} entities/s)`)
        const runs: Start[] = []
        for (let run = 0; run < options.runs; run++) {
          const s = await startAndSweep(dataDir, options, count, sweep)
          runs.push(s)
          const mb = (r: Rss | null): string => (r === null ? 'n/a' : `${r.rssMb.toFixed(0)} MB (anon ${r.anonMb.toFixed(0)}, file ${r.fileMb.toFixed(0)})`)
          options.log(
            `  run ${run + 1}/${options.runs}: API after ${(s.apiMs / 1000).toFixed(2)} s, first read after ${(s.readyMs / 1000).toFixed(2)} s; ` +
              `RSS ${mb(s.atStart)} after start, ${mb(s.afterSweep)} after ${sweep.toLocaleString('en-US')} reads (${Math.round(s.sweepReadsPerSec)}/s), peak ${s.afterSweep?.peakMb.toFixed(0) ?? 'n/a'} MB`,
          )
        }
        let profile: ProfileSummary | undefined
        if (options.cpuProfDir !== undefined) {
          const dir = join(options.cpuProfDir, 'startup-memory')
          await rm(dir, { recursive: true, force: true })
          await mkdir(dir, { recursive: true })
          options.log('  profiling pass (not measured)')
          await startAndSweep(dataDir, options, count, sweep, ['--cpu-prof', '--cpu-prof-dir', dir])
          profile = await summarizeProfileDir(dir, undefined, 20)
        }
        const label = count.toLocaleString('en-US')
        const atMost = (figureLabel: string, unit: string, values: number[], bound: number): Figure => {
          const summary = summarize(values)
          return { label: figureLabel, unit, summary, target: { atMost: bound, met: summary.median <= bound } }
        }
        const mbFigures = (figureLabel: string, values: (number | null)[], bound?: number): Figure[] => {
          if (values.some((v) => v === null)) return []
          return bound === undefined ? [{ label: figureLabel, unit: 'MB', summary: summarize(values as number[]) }] : [atMost(figureLabel, 'MB', values as number[], bound)]
        }
        const figures: Figure[] = [
          atMost(`${label} entities: start until the first read`, 's', runs.map((s) => s.readyMs / 1000), START_TARGET_S),
          { label: `${label} entities: start until /v1/status answers`, unit: 's', summary: summarize(runs.map((s) => s.apiMs / 1000)) },
          ...mbFigures(`${label} entities: RSS after start`, runs.map((s) => s.atStart?.rssMb ?? null)),
          ...mbFigures(`${label} entities: RSS after ${sweep.toLocaleString('en-US')} random reads`, runs.map((s) => s.afterSweep?.rssMb ?? null)),
          ...mbFigures('  of which private (RssAnon)', runs.map((s) => s.afterSweep?.anonMb ?? null)),
          ...mbFigures('  of which mapped files (RssFile: code, LevelDB tables)', runs.map((s) => s.afterSweep?.fileMb ?? null)),
          ...mbFigures(`${label} entities: peak RSS (start and reads)`, runs.map((s) => s.afterSweep?.peakMb ?? null), RSS_TARGET_MB),
          { label: `${label} entities: random reads during the sweep`, unit: 'reads/s', summary: summarize(runs.map((s) => s.sweepReadsPerSec)) },
        ]
        return {
          name: 'startup-memory',
          title: this.title,
          params: {
            entities: count,
            sweepReads: sweep,
            sweepLoops: SWEEP_LOOPS,
            loadSeconds: loadS,
            record: JSON.stringify(valueOf(123)),
            runs: options.runs,
            measures:
              'the data dir is filled once (not measured) through the daemon\'s EntityStore on its LevelDB, 1000 entities per batch; each run spawns `meshsync start` on it: ' +
              'start = from the spawn until GET /v1/status answered on the Unix socket (polled every 5 ms) and a GET of a random existing entity returned its record; ' +
              'RSS = VmRSS of the daemon right after that and after the sweep (random GETs, 8 concurrent, every record checked), split into RssAnon (private) and RssFile ' +
              '(mapped files: code, and the LevelDB table files, which LevelDB reads through mmap, so the pages of every table a read touched count; the kernel can drop them), peak = VmHWM; ' +
              `the reported entity count must equal ${count}. Warm page cache (the files were just written). Targets: start <= ${START_TARGET_S} s, peak RSS <= ${RSS_TARGET_MB} MB; no baseline`,
            starts: runs,
          },
          figures,
          ...(profile && { profile }),
        }
      } finally {
        await rm(dataDir, { recursive: true, force: true })
      }
    },
  }
}
