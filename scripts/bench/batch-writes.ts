import type { LocalOp } from '../../daemon/store/entity-store.ts'
import { check, verifyDaemon, verifyLevel } from './checks.ts'
import { cpuUsPerOp, monotonicUs, processCpuMs, selfCpuMs } from './cpu.ts'
import { withDaemon } from './daemon.ts'
import { RawLevel } from './level-baseline.ts'
import { sequential } from './load.ts'
import { pairedPasses } from './paired.ts'
import { profilingPass } from './profile.ts'
import { makeRecord, recordId, sampleIndexes } from './records.ts'
import { SocketClient } from './socket-client.ts'
import { sameEntriesPass, storePass, type StorePass } from './storage-layout.ts'
import { rate, summarize } from './stats.ts'
import { optionalFigure, ratioFigure, type Benchmark, type BenchOptions, type BenchResult, type PassMeasure } from './types.ts'

const NS = 'bench'
const WARM_NS = 'warm'
const OPS_PER_BATCH = 1000
const WARM_BATCHES = 2
const SAMPLES = 200
/** Most records of the storage-layout passes (their batches are held in memory to be written again). */
const LAYOUT_RECORDS = 50_000

/** Total records of one run; `--records` overrides. */
export function batchRecordCount(options: BenchOptions, override?: number): number {
  return override ?? (options.full ? 500_000 : 50_000)
}

interface Workload {
  readonly total: number
  readonly ids: readonly string[]
  readonly records: readonly { v: string }[]
  /** POST /v1/batch bodies, pre-serialized. */
  readonly bodies: readonly string[]
  readonly warmBodies: readonly string[]
  /** The same records as classic-level batches. */
  readonly levelBatches: readonly { type: 'put'; key: string; value: string }[][]
  readonly warmLevelBatches: readonly { type: 'put'; key: string; value: string }[][]
  /** The first records (at most LAYOUT_RECORDS) as store writes, for the storage-layout passes. */
  readonly storeBatches: readonly LocalOp[][]
  readonly warmStoreBatches: readonly LocalOp[][]
}

function makeWorkload(total: number): Workload {
  const ids = Array.from({ length: total }, (_, i) => recordId('r', i))
  const records = Array.from({ length: total }, makeRecord)
  const warmIds = Array.from({ length: WARM_BATCHES * OPS_PER_BATCH }, (_, i) => recordId('w', i))
  const warmRecords = warmIds.map(makeRecord)
  const chunk = (n: number): number[][] => {
    const out: number[][] = []
    for (let start = 0; start < n; start += OPS_PER_BATCH) out.push(Array.from({ length: Math.min(OPS_PER_BATCH, n - start) }, (_, k) => start + k))
    return out
  }
  const body = (ns: string, idx: readonly number[], idList: readonly string[], recs: readonly { v: string }[]): string =>
    JSON.stringify({ ops: idx.map((i) => ({ op: 'put', ns, id: idList[i], value: recs[i] })) })
  const level = (idx: readonly number[], idList: readonly string[], recs: readonly { v: string }[]) =>
    idx.map((i) => ({ type: 'put' as const, key: idList[i] as string, value: JSON.stringify(recs[i]) }))
  const store = (ns: string, idx: readonly number[], idList: readonly string[], recs: readonly { v: string }[]): LocalOp[] =>
    idx.map((i) => ({ op: 'put', ns, id: idList[i] as string, value: recs[i] as { v: string } }))
  return {
    total,
    ids,
    records,
    bodies: chunk(total).map((idx) => body(NS, idx, ids, records)),
    warmBodies: chunk(warmIds.length).map((idx) => body(WARM_NS, idx, warmIds, warmRecords)),
    levelBatches: chunk(total).map((idx) => level(idx, ids, records)),
    warmLevelBatches: chunk(warmIds.length).map((idx) => level(idx, warmIds, warmRecords)),
    storeBatches: chunk(Math.min(total, LAYOUT_RECORDS)).map((idx) => store(NS, idx, ids, records)),
    warmStoreBatches: chunk(warmIds.length).map((idx) => store(WARM_NS, idx, warmIds, warmRecords)),
  }
}

/** One pass through the daemon: records/s of acknowledged POST /v1/batch, after checking what it holds. */
async function daemonPass(options: BenchOptions, w: Workload, cpuProfDir?: string): Promise<PassMeasure> {
  return withDaemon(options.baseDir, cpuProfDir, async (daemon) => {
    const client = new SocketClient(daemon.socket, 1)
    try {
      const post = async (body: string): Promise<void> => {
        const res = (await client.expect('POST', '/v1/batch', body)) as { results?: unknown[] }
        check(Array.isArray(res.results) && res.results.length === OPS_PER_BATCH, `a batch answered ${res.results?.length} results, expected ${OPS_PER_BATCH}`)
      }
      await sequential(w.warmBodies, post)
      const [cpu0, client0, from] = [processCpuMs(daemon.pid), selfCpuMs(), monotonicUs()]
      const elapsed = await sequential(w.bodies, post)
      const [cpu1, client1, to] = [processCpuMs(daemon.pid), selfCpuMs(), monotonicUs()]
      await verifyDaemon(client, {
        nodeId: daemon.info.nodeId,
        ns: NS,
        count: w.total,
        changes: w.total + WARM_BATCHES * OPS_PER_BATCH,
        samples: sampleIndexes(w.total, SAMPLES).map((i) => [w.ids[i] as string, w.records[i] as { v: string }] as const),
      })
      return {
        opsPerSec: rate(w.total, elapsed),
        cpuUsPerOp: cpuUsPerOp(cpu0, cpu1, w.total),
        clientCpuUsPerOp: cpuUsPerOp(client0, client1, w.total),
        window: { fromUs: from, toUs: to },
      }
    } finally {
      client.close()
    }
  })
}

/** One baseline pass: records/s of raw classic-level `batch(1000 puts, { sync: true })`, checked the same way. */
async function levelPass(options: BenchOptions, w: Workload): Promise<PassMeasure> {
  const raw = await RawLevel.open(options.baseDir)
  try {
    const write = (ops: { type: 'put'; key: string; value: string }[]): Promise<void> => raw.db.batch(ops, { sync: true })
    await sequential(w.warmLevelBatches, write)
    const [cpu0, from] = [selfCpuMs(), monotonicUs()]
    const elapsed = await sequential(w.levelBatches, write)
    const [cpu1, to] = [selfCpuMs(), monotonicUs()]
    await verifyLevel(
      raw,
      'r',
      w.total,
      sampleIndexes(w.total, SAMPLES).map((i) => [w.ids[i] as string, JSON.stringify(w.records[i])] as const),
    )
    return { opsPerSec: rate(w.total, elapsed), cpuUsPerOp: cpuUsPerOp(cpu0, cpu1, w.total), window: { fromUs: from, toUs: to } }
  } finally {
    await raw.destroy()
  }
}

export function batchWrites(recordsOverride?: number): Benchmark {
  return {
    name: 'batch-writes',
    title: 'batched durable writes of ~100-byte records (POST /v1/batch, 1000 puts per batch) vs classic-level batch({sync: true})',
    async run(options: BenchOptions): Promise<BenchResult> {
      const total = batchRecordCount(options, recordsOverride)
      check(total > 0 && total % OPS_PER_BATCH === 0, `--records must be a positive multiple of ${OPS_PER_BATCH}`)
      const w = makeWorkload(total)
      const ours: PassMeasure[] = []
      const base: PassMeasure[] = []
      const ratios: number[] = []
      const stores: StorePass[] = []
      const sameEntries: PassMeasure[] = []
      const layoutRecords = Math.min(total, LAYOUT_RECORDS)
      for (let run = 0; run < options.runs; run++) {
        const { o, b } = await pairedPasses(run, () => daemonPass(options, w), () => levelPass(options, w))
        ours.push(o)
        base.push(b)
        ratios.push(o.opsPerSec / b.opsPerSec)
        const s = await storePass(options.baseDir, NS, w.warmStoreBatches, w.storeBatches)
        const e = await sameEntriesPass(options.baseDir, NS, s, layoutRecords)
        stores.push(s)
        sameEntries.push(e)
        options.log(
          `  run ${run + 1}/${options.runs}: meshsync ${Math.round(o.opsPerSec)} rec/s, classic-level ${Math.round(b.opsPerSec)} rec/s, ` +
            `ratio ${(o.opsPerSec / b.opsPerSec).toFixed(3)}; the store in-process ${Math.round(s.opsPerSec)} rec/s, ` +
            `classic-level writing the store's entries (${s.entriesPerRecord.toFixed(2)} per record, ${Math.round(s.bytesPerRecord)} B) ${Math.round(e.opsPerSec)} rec/s`,
        )
      }
      const profile = await profilingPass(options, 'batch-writes', (dir) => daemonPass(options, w, dir))
      return {
        name: 'batch-writes',
        title: this.title,
        params: { records: total, opsPerBatch: OPS_PER_BATCH, recordBytes: JSON.stringify(w.records[0]).length, inFlight: 1, warmupRecords: WARM_BATCHES * OPS_PER_BATCH, layoutRecords, runs: options.runs },
        figures: [
          { label: 'meshsync records/s', unit: 'rec/s', summary: summarize(ours.map((r) => r.opsPerSec)) },
          { label: 'classic-level records/s', unit: 'rec/s', summary: summarize(base.map((r) => r.opsPerSec)) },
          ratioFigure('ratio meshsync/classic-level', summarize(ratios), 0.25),
          ...optionalFigure('meshsync daemon CPU per record', 'µs/op', ours.map((r) => r.cpuUsPerOp)),
          ...optionalFigure('bench client CPU per record', 'µs/op', ours.map((r) => r.clientCpuUsPerOp)),
          ...optionalFigure('classic-level CPU per record', 'µs/op', base.map((r) => r.cpuUsPerOp)),
          // Where the gap lies: the store without HTTP, and the entries it writes without the store.
          { label: 'the store in-process, no HTTP: records/s', unit: 'rec/s', summary: summarize(stores.map((r) => r.opsPerSec)) },
          ...optionalFigure('the store in-process: CPU per record', 'µs/op', stores.map((r) => r.cpuUsPerOp)),
          { label: "classic-level writing the store's own entries: records/s", unit: 'rec/s', summary: summarize(sameEntries.map((r) => r.opsPerSec)) },
          { label: "ratio classic-level with the store's entries / classic-level (the layout's ceiling)", unit: 'x', summary: summarize(sameEntries.map((r, i) => r.opsPerSec / (base[i] as PassMeasure).opsPerSec)) },
          { label: 'LevelDB entries per record', unit: '', summary: summarize(stores.map((r) => r.entriesPerRecord)) },
          { label: 'LevelDB bytes per record (keys and values)', unit: 'B', summary: summarize(stores.map((r) => r.bytesPerRecord)) },
        ],
        ...(profile && { profile }),
      }
    },
  }
}
