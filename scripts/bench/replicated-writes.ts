import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { check, sameRecord } from './checks.ts'
import { withCluster, type BenchCluster } from './cluster.ts'
import { cpuUsPerOp, machineBusyPct, machineCpuTicks, monotonicUs, processesCpuMs } from './cpu.ts'
import { closedLoop, warmUpRounds } from './load.ts'
import { ensureOrbitDB, OrbitCluster, ORBITDB_DIR } from './orbitdb.ts'
import { pairedPasses } from './paired.ts'
import { profilesIn, summarizeProfiles, type ProfileSummary, type TimeWindow } from './profile.ts'
import { makeRecord, recordId, sampleIndexes } from './records.ts'
import { rate, summarize } from './stats.ts'
import { optionalFigure, ratioFigure, unavailableFigure, type Benchmark, type BenchOptions, type BenchResult, type Figure } from './types.ts'

const NODES = 3
const LOOPS_PER_NODE = 8
const NS = 'rw'
const WARM_NS = 'warm'
/** Warm-up, either side: rounds of this many writes per node, each until converged, until WARM_MS have passed. */
const WARM_PER_NODE = 50
const WARM_MS = 3_000
const SAMPLES_PER_ORIGIN = 20
const TARGET_VS_ORBITDB = 50

interface Workload {
  readonly total: number
  /** ids[j]: the entities node j writes. */
  readonly ids: readonly (readonly string[])[]
  readonly records: readonly (readonly { v: string }[])[]
  readonly bodies: readonly (readonly string[])[]
}

function makeWorkload(total: number): Workload {
  const per = (j: number): number => Math.floor(total / NODES) + (j < total % NODES ? 1 : 0)
  const ids = Array.from({ length: NODES }, (_, j) => Array.from({ length: per(j) }, (_, i) => recordId(`n${j}-`, i)))
  const records = ids.map((list) => list.map(makeRecord))
  return { total, ids, records, bodies: records.map((list) => list.map((r) => JSON.stringify(r))) }
}

interface Pass {
  /** Writes per second until every node had every write. */
  readonly convergedPerSec: number
  /** Writes per second until the last write was acknowledged (to its own node). */
  readonly ackedPerSec: number
  readonly convergeMs: number
  /** Time from the last acknowledgement until every node had everything. */
  readonly tailMs: number
  /** CPU of every node process (3 daemons or 3 OrbitDB processes) per write, in µs. */
  readonly cpuUsPerWrite: number | null
  /** Share of the machine's CPU capacity in use while measuring, by anything (other work included). */
  readonly machineBusyPct: number | null
  readonly window?: TimeWindow
  /** Warm-up rounds run before it. */
  readonly warmRounds: number
}

/** Id of the i-th warm-up write of node j in round r. */
function warmId(r: number, j: number, i: number): string {
  return recordId(`w${r}-${j}-`, i)
}

/** Three daemons, 3 x 8 closed loops of PUTs (each node its own ids), then polls every node's version vector until all converged. */
async function meshsyncPass(options: BenchOptions, w: Workload, cpuProfDir?: string): Promise<Pass> {
  return withCluster(NODES, { baseDir: options.baseDir, clientSockets: LOOPS_PER_NODE, ...(cpuProfDir !== undefined && { cpuProfDir }) }, async (cluster) => {
    const put = async (node: number, ns: string, id: string, body: string): Promise<void> => {
      const client = (cluster.nodes[node] as BenchCluster['nodes'][number]).client
      await client.expect('PUT', `/v1/ns/${ns}/entities/${id}`, body)
    }
    // Warm-up: every node writes, and everything converges (connections, gossip, JIT).
    const warmRounds = await warmUpRounds(WARM_MS, async (r) => {
      await Promise.all(
        cluster.nodes.map((_, j) => closedLoop(WARM_PER_NODE, LOOPS_PER_NODE, (i) => put(j, WARM_NS, warmId(r, j, i), JSON.stringify(makeRecord())))),
      )
      await cluster.waitForVector(await cluster.mergedVector(), { timeoutMs: 60_000 })
    })
    const base = await cluster.mergedVector()
    const expected: Record<string, number> = { ...base }
    cluster.nodes.forEach((node, j) => {
      const nodeId = node.daemon.info.nodeId
      expected[nodeId] = (expected[nodeId] ?? 0) + (w.ids[j]?.length ?? 0)
    })

    const pids = cluster.nodes.map((node) => node.daemon.pid)
    const [cpu0, m0, from] = [processesCpuMs(pids), machineCpuTicks(), monotonicUs()]
    const t0 = performance.now()
    await Promise.all(
      cluster.nodes.map((_, j) => closedLoop(w.ids[j]?.length ?? 0, LOOPS_PER_NODE, (i) => put(j, NS, w.ids[j]?.[i] as string, w.bodies[j]?.[i] as string))),
    )
    const ackedAt = performance.now()
    const convergedAt = await cluster.waitForVector(expected, { timeoutMs: 300_000, intervalMs: 10 })
    const [cpu1, m1, to] = [processesCpuMs(pids), machineCpuTicks(), monotonicUs()]

    // Checks: every node holds every entity, and reads back other nodes' writes as written.
    for (const [k, node] of cluster.nodes.entries()) {
      const status = await cluster.status(node)
      check(status.namespaces[NS] === w.total, `node ${k} holds ${status.namespaces[NS]} entities of ${NS}, expected ${w.total}`)
      for (let j = 0; j < NODES; j++) {
        const ids = w.ids[j] ?? []
        for (const i of sampleIndexes(ids.length, SAMPLES_PER_ORIGIN)) {
          const entity = (await node.client.expect('GET', `/v1/ns/${NS}/entities/${ids[i]}`, undefined)) as { value?: unknown }
          check(sameRecord(entity.value, w.records[j]?.[i] as { v: string }), `node ${k} reads ${NS}/${ids[i]} as ${JSON.stringify(entity.value)}`)
        }
      }
    }
    return {
      convergedPerSec: rate(w.total, convergedAt - t0),
      ackedPerSec: rate(w.total, ackedAt - t0),
      convergeMs: convergedAt - t0,
      tailMs: convergedAt - ackedAt,
      cpuUsPerWrite: cpuUsPerOp(cpu0, cpu1, w.total),
      machineBusyPct: machineBusyPct(m0, m1),
      window: { fromUs: from, toUs: to },
      warmRounds,
    }
  })
}

/** The same workload on three OrbitDB 4.0 processes (keyvalue), until every node's log has every entry. */
async function orbitPass(options: BenchOptions, w: Workload): Promise<Pass & { versions: Readonly<Record<string, string>> }> {
  const cluster = await OrbitCluster.start(NODES, options.baseDir)
  try {
    const warmRounds = await warmUpRounds(WARM_MS, async (r) => {
      const warmKeys = Array.from({ length: NODES }, (_, j) => Array.from({ length: WARM_PER_NODE }, (_, i) => warmId(r, j, i)))
      await cluster.writeAll(warmKeys, warmKeys.map((list) => list.map(makeRecord)), LOOPS_PER_NODE, 120_000)
    })
    const pids = cluster.peers.map((p) => p.pid)
    const [cpu0, m0, t0] = [processesCpuMs(pids), machineCpuTicks(), performance.now()]
    const { ackedAt, convergedAt } = await cluster.writeAll(w.ids, w.records, LOOPS_PER_NODE, 900_000)
    const [cpu1, m1] = [processesCpuMs(pids), machineCpuTicks()]
    for (let k = 0; k < NODES; k++) {
      for (let j = 0; j < NODES; j++) {
        const ids = w.ids[j] ?? []
        const picked = sampleIndexes(ids.length, 5)
        const values = await cluster.read(k, picked.map((i) => ids[i] as string))
        picked.forEach((i, n) => check(sameRecord(values[n], w.records[j]?.[i] as { v: string }), `OrbitDB node ${k} reads ${ids[i]} as ${JSON.stringify(values[n])}`))
      }
    }
    return {
      convergedPerSec: rate(w.total, convergedAt - t0),
      ackedPerSec: rate(w.total, ackedAt - t0),
      convergeMs: convergedAt - t0,
      tailMs: convergedAt - ackedAt,
      cpuUsPerWrite: cpuUsPerOp(cpu0, cpu1, w.total),
      machineBusyPct: machineBusyPct(m0, m1),
      versions: cluster.versions,
      warmRounds,
    }
  } finally {
    await cluster.stop()
  }
}

export function replicatedWrites(writesOverride?: number): Benchmark {
  return {
    name: 'replicated-writes',
    title: `sustained replicated writes across ${NODES} daemons (${NODES} x ${LOOPS_PER_NODE} concurrent PUT loops, one per node's own ids) until every node has every write, vs OrbitDB 4.0 keyvalue with the same workload`,
    async run(options: BenchOptions): Promise<BenchResult> {
      const total = writesOverride ?? (options.full ? 10_000 : 3_000)
      const w = makeWorkload(total)
      const orbit = await ensureOrbitDB(options.log)
      let orbitUnavailable: string | undefined = orbit.ok ? undefined : orbit.reason
      if (!orbit.ok) options.log(`  OrbitDB unavailable: ${orbit.reason}`)
      const ours: Pass[] = []
      const base: (Pass & { versions: Readonly<Record<string, string>> })[] = []
      for (let run = 0; run < options.runs; run++) {
        const tryOrbit = async (): Promise<void> => {
          if (orbitUnavailable !== undefined) return
          try {
            base.push(await orbitPass(options, w))
          } catch (error) {
            // A baseline that does not run is reported as such, never as a number.
            orbitUnavailable = `OrbitDB did not run: ${(error instanceof Error ? error.message : String(error)).split('\n')[0]?.slice(0, 200)}`
            options.log(`  ${orbitUnavailable}`)
          }
        }
        const { o } = await pairedPasses(run, () => meshsyncPass(options, w), tryOrbit)
        ours.push(o)
        const b = orbitUnavailable === undefined ? base.at(-1) : undefined
        options.log(
          `  run ${run + 1}/${options.runs}: meshsync ${Math.round(o.convergedPerSec)} writes/s converged (acked ${Math.round(o.ackedPerSec)}/s, all nodes ${(o.convergeMs / 1000).toFixed(2)} s), ` +
            (b ? `OrbitDB ${b.convergedPerSec.toFixed(1)} writes/s converged (acked ${b.ackedPerSec.toFixed(1)}/s, all nodes ${(b.convergeMs / 1000).toFixed(1)} s), ratio ${(o.convergedPerSec / b.convergedPerSec).toFixed(1)}` : 'OrbitDB n/a'),
        )
      }
      let profile: ProfileSummary | undefined
      if (options.cpuProfDir !== undefined) {
        const dir = join(options.cpuProfDir, 'replicated-writes')
        await rm(dir, { recursive: true, force: true })
        await mkdir(dir, { recursive: true })
        options.log('  profiling pass (not measured)')
        const pass = await meshsyncPass(options, w, dir)
        const files = (await Promise.all(Array.from({ length: NODES }, (_, i) => profilesIn(join(dir, `node-${i}`))))).flat()
        profile = await summarizeProfiles(files, pass.window, 20, `all ${NODES} daemons (merged)`)
      }
      const orbitOk = orbitUnavailable === undefined && base.length === ours.length
      const reason = orbitUnavailable ?? 'OrbitDB did not complete every run'
      const figures: Figure[] = [
        { label: 'meshsync writes/s (all nodes converged)', unit: 'writes/s', summary: summarize(ours.map((p) => p.convergedPerSec)) },
        { label: 'meshsync writes/s (acknowledged)', unit: 'writes/s', summary: summarize(ours.map((p) => p.ackedPerSec)) },
        { label: 'meshsync time until all converged', unit: 's', summary: summarize(ours.map((p) => p.convergeMs / 1000)) },
        { label: 'meshsync convergence after last ack', unit: 'ms', summary: summarize(ours.map((p) => p.tailMs)) },
        ...optionalFigure('meshsync CPU per write (3 daemons)', 'µs/op', ours.map((p) => p.cpuUsPerWrite)),
        ...optionalFigure('machine CPU busy while meshsync ran', '%', ours.map((p) => p.machineBusyPct)),
      ]
      if (orbitOk) {
        figures.push(
          { label: 'OrbitDB writes/s (all nodes converged)', unit: 'writes/s', summary: summarize(base.map((p) => p.convergedPerSec)) },
          { label: 'OrbitDB writes/s (acknowledged)', unit: 'writes/s', summary: summarize(base.map((p) => p.ackedPerSec)) },
          { label: 'OrbitDB time until all converged', unit: 's', summary: summarize(base.map((p) => p.convergeMs / 1000)) },
          ...optionalFigure('OrbitDB CPU per write (3 processes)', 'µs/op', base.map((p) => p.cpuUsPerWrite)),
          ...optionalFigure('machine CPU busy while OrbitDB ran', '%', base.map((p) => p.machineBusyPct)),
          ratioFigure('ratio meshsync/OrbitDB (converged writes/s)', summarize(ours.map((o, i) => o.convergedPerSec / (base[i] as Pass).convergedPerSec)), TARGET_VS_ORBITDB),
        )
      } else {
        figures.push(
          unavailableFigure('OrbitDB writes/s (all nodes converged)', 'writes/s', reason),
          unavailableFigure('ratio meshsync/OrbitDB (converged writes/s)', 'x', reason, { atLeast: TARGET_VS_ORBITDB }),
        )
      }
      return {
        name: 'replicated-writes',
        title: this.title,
        params: {
          nodes: NODES,
          writes: total,
          loopsPerNode: LOOPS_PER_NODE,
          recordBytes: w.bodies[0]?.[0]?.length,
          warmup: `rounds of ${WARM_PER_NODE} writes per node, each until converged, for at least ${WARM_MS} ms, on either side (rounds run: passes.*.warmRounds)`,
          runs: options.runs,
          measures:
            'clock starts before the first write; meshsync: converged = every daemon\'s /v1/status versionVector covers every write (polled every 10 ms once all writes are acknowledged); ' +
            'OrbitDB: converged = every node\'s oplog has every entry hash (polled every 10 ms); writes/s = writes / time until converged',
          orbitdb: orbitOk
            ? { versions: base[0]?.versions, dir: ORBITDB_DIR, installedNow: orbit.ok && orbit.installedNow, setup: 'one process per node: libp2p TCP+Noise+Yamux+gossipsub, Helia 6 (bitswap, in-memory blockstore), keyvalue db, IPFSAccessController write *' }
            : { unavailable: reason },
          passes: { meshsync: ours.map(({ window: _w, ...p }) => p), orbitdb: base },
        },
        figures,
        ...(profile && { profile }),
      }
    },
  }
}
