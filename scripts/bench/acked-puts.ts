import { check, sameRecord, verifyDaemon, verifyLevel } from './checks.ts'
import { cpuUsPerOp, monotonicUs, processCpuMs, selfCpuMs } from './cpu.ts'
import { withDaemon } from './daemon.ts'
import { RawLevel } from './level-baseline.ts'
import { closedLoop, warmUp } from './load.ts'
import { pairedPasses } from './paired.ts'
import { profilingPass } from './profile.ts'
import { makeRecord, recordId, sampleIndexes } from './records.ts'
import { SocketClient } from './socket-client.ts'
import { p50p99, rate, summarize } from './stats.ts'
import { optionalFigure, ratioFigure, type Benchmark, type BenchOptions, type BenchResult, type PassMeasure } from './types.ts'

const NS = 'bench'
const WARM_NS = 'warm'
const CONCURRENCY = 32
/** Unmeasured warm-up of each pass, on either side (see {@link warmUp}). */
const WARM_MS = 3_000
const SAMPLES = 200

interface Workload {
  readonly total: number
  readonly ids: readonly string[]
  readonly records: readonly { v: string }[]
  /** PUT bodies (and classic-level values), pre-serialized. */
  readonly bodies: readonly string[]
  /** Warm-up bodies, used in turn. */
  readonly warmBodies: readonly string[]
}

function makeWorkload(total: number): Workload {
  const ids = Array.from({ length: total }, (_, i) => recordId('p', i))
  const records = Array.from({ length: total }, makeRecord)
  const warmBodies = Array.from({ length: 1_000 }, () => JSON.stringify(makeRecord()))
  return { total, ids, records, bodies: records.map((r) => JSON.stringify(r)), warmBodies }
}

/** The i-th warm-up PUT's id and body. */
function warmPut(w: Workload, i: number): { id: string; body: string } {
  return { id: recordId('w', i), body: w.warmBodies[i % w.warmBodies.length] as string }
}

interface PassResult extends PassMeasure {
  readonly p50: number
  readonly p99: number
  /** Operations of the pass's warm-up. */
  readonly warmOps: number
}


/** One pass through the daemon: 32 closed loops of acknowledged PUTs, then a read-back check. */
async function daemonPass(options: BenchOptions, w: Workload, cpuProfDir?: string): Promise<PassResult> {
  return withDaemon(options.baseDir, cpuProfDir, async (daemon) => {
    const client = new SocketClient(daemon.socket, CONCURRENCY)
    try {
      const put = async (ns: string, id: string, body: string, expected?: { v: string }): Promise<void> => {
        const entity = (await client.expect('PUT', `/v1/ns/${ns}/entities/${id}`, body)) as { id?: string; value?: unknown }
        if (expected) check(entity.id === id && sameRecord(entity.value, expected), `PUT ${ns}/${id} answered ${JSON.stringify(entity).slice(0, 200)}`)
      }
      const warmOps = await warmUp(WARM_MS, CONCURRENCY, (i) => {
        const { id, body } = warmPut(w, i)
        return put(WARM_NS, id, body)
      })
      const [cpu0, client0, from] = [processCpuMs(daemon.pid), selfCpuMs(), monotonicUs()]
      const load = await closedLoop(w.total, CONCURRENCY, (i) => put(NS, w.ids[i] as string, w.bodies[i] as string, w.records[i]))
      const [cpu1, client1, to] = [processCpuMs(daemon.pid), selfCpuMs(), monotonicUs()]
      await verifyDaemon(client, {
        nodeId: daemon.info.nodeId,
        ns: NS,
        count: w.total,
        changes: w.total + warmOps,
        samples: sampleIndexes(w.total, SAMPLES).map((i) => [w.ids[i] as string, w.records[i] as { v: string }] as const),
      })
      return {
        opsPerSec: rate(w.total, load.elapsedMs),
        ...p50p99(load.latencies),
        cpuUsPerOp: cpuUsPerOp(cpu0, cpu1, w.total),
        clientCpuUsPerOp: cpuUsPerOp(client0, client1, w.total),
        window: { fromUs: from, toUs: to },
        warmOps,
      }
    } finally {
      client.close()
    }
  })
}

/** One baseline pass: 32 closed loops of raw classic-level `put(key, value, { sync: true })`, checked the same way. */
async function levelPass(options: BenchOptions, w: Workload): Promise<PassResult> {
  const raw = await RawLevel.open(options.baseDir)
  try {
    const warmOps = await warmUp(WARM_MS, CONCURRENCY, (i) => {
      const { id, body } = warmPut(w, i)
      return raw.db.put(id, body, { sync: true })
    })
    const [cpu0, from] = [selfCpuMs(), monotonicUs()]
    const load = await closedLoop(w.total, CONCURRENCY, (i) => raw.db.put(w.ids[i] as string, w.bodies[i] as string, { sync: true }))
    const [cpu1, to] = [selfCpuMs(), monotonicUs()]
    await verifyLevel(
      raw,
      'p',
      w.total,
      sampleIndexes(w.total, SAMPLES).map((i) => [w.ids[i] as string, w.bodies[i] as string] as const),
    )
    return {
      opsPerSec: rate(w.total, load.elapsedMs),
      ...p50p99(load.latencies),
      cpuUsPerOp: cpuUsPerOp(cpu0, cpu1, w.total),
      window: { fromUs: from, toUs: to },
      warmOps,
    }
  } finally {
    await raw.destroy()
  }
}

export function ackedPuts(putsOverride?: number): Benchmark {
  return {
    name: 'acked-puts',
    title: `single acknowledged PUTs from ${CONCURRENCY} concurrent clients vs classic-level put({sync: true}) at the same concurrency`,
    async run(options: BenchOptions): Promise<BenchResult> {
      const total = putsOverride ?? (options.full ? 50_000 : 20_000)
      check(total > 0, '--puts must be positive')
      const w = makeWorkload(total)
      const ours: PassResult[] = []
      const base: PassResult[] = []
      const ratios: number[] = []
      for (let run = 0; run < options.runs; run++) {
        const { o, b } = await pairedPasses(run, () => daemonPass(options, w), () => levelPass(options, w))
        ours.push(o)
        base.push(b)
        ratios.push(o.opsPerSec / b.opsPerSec)
        options.log(
          `  run ${run + 1}/${options.runs}: meshsync ${Math.round(o.opsPerSec)} ops/s (p50 ${o.p50.toFixed(2)} ms, p99 ${o.p99.toFixed(2)} ms), ` +
            `classic-level ${Math.round(b.opsPerSec)} ops/s, ratio ${(o.opsPerSec / b.opsPerSec).toFixed(3)}`,
        )
      }
      const profile = await profilingPass(options, 'acked-puts', (dir) => daemonPass(options, w, dir))
      return {
        name: 'acked-puts',
        title: this.title,
        params: { puts: total, concurrency: CONCURRENCY, recordBytes: w.bodies[0]?.length, warmupMs: WARM_MS, warmupPuts: { meshsync: ours.map((r) => r.warmOps), classicLevel: base.map((r) => r.warmOps) }, runs: options.runs },
        figures: [
          { label: 'meshsync PUTs/s', unit: 'ops/s', summary: summarize(ours.map((r) => r.opsPerSec)) },
          { label: 'classic-level put/s', unit: 'ops/s', summary: summarize(base.map((r) => r.opsPerSec)) },
          ratioFigure('ratio meshsync/classic-level', summarize(ratios), 1),
          { label: 'meshsync PUT latency p50', unit: 'ms', summary: summarize(ours.map((r) => r.p50)) },
          { label: 'meshsync PUT latency p99', unit: 'ms', summary: summarize(ours.map((r) => r.p99)) },
          { label: 'classic-level put latency p50', unit: 'ms', summary: summarize(base.map((r) => r.p50)) },
          { label: 'classic-level put latency p99', unit: 'ms', summary: summarize(base.map((r) => r.p99)) },
          ...optionalFigure('meshsync daemon CPU per PUT', 'µs/op', ours.map((r) => r.cpuUsPerOp)),
          ...optionalFigure('bench client CPU per PUT', 'µs/op', ours.map((r) => r.clientCpuUsPerOp)),
          ...optionalFigure('classic-level CPU per put', 'µs/op', base.map((r) => r.cpuUsPerOp)),
        ],
        ...(profile && { profile }),
      }
    },
  }
}
