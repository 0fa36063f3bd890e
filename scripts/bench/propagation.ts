import { randomBytes } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { ChangeFeed } from './change-feed.ts'
import { check, CheckFailed } from './checks.ts'
import { commitBuckets, slowCommitsPct, type CommitBuckets } from './commit-histogram.ts'
import { BenchCluster } from './cluster.ts'
import { cpus } from 'node:os'
import { machineBusyPct, machineCpuTicks, monotonicUs, processesCpuMs } from './cpu.ts'
import { GossipMesh } from './gossip-baseline.ts'
import { AllReceiversTracker, paced, type Latencies } from './latency-tracker.ts'
import { pairedPasses } from './paired.ts'
import { profilesIn, summarizeProfiles, type ProfileSummary, type TimeWindow } from './profile.ts'
import { p50p99, summarize } from './stats.ts'
import { optionalFigure, ratioAtMostFigure, type Benchmark, type BenchOptions, type BenchResult, type Figure } from './types.ts'

const NS = 'prop'
/** `{"v":"<192 chars>"}`: a 200-byte PUT body; the raw gossip payload is 200 bytes too. */
const VALUE_CHARS = 192
const PAYLOAD_BYTES = 200
const RATE = 50
/**
 * Unmeasured warm-up on each side, at the measured rate: 5 s. Freshly started daemons are slow
 * for their first seconds (V8 compiles their hot paths, on the main thread when it runs
 * single-threaded, on 2 CPUs or fewer): after 25 messages (0.5 s), the first measured 5-node
 * window had p99 89-91 ms in two runs against 17-31 ms for the windows after it; after 250, 21 ms.
 */
const WARM_MESSAGES = 5 * RATE
/** How long a message may take to reach everyone before the run fails. */
const DELIVERY_TIMEOUT_MS = 30_000
const P99_TARGET = 3
/** A commit slower than this (a bound of the daemon's commit histogram) is counted as slow. */
const SLOW_COMMIT_S = 0.005

interface WindowStats {
  /** Until every receiver had the message. */
  readonly p50: number
  readonly p99: number
  readonly max: number
  /** Until the first receiver had it. */
  readonly firstP50: number
  readonly firstP99: number
  /** meshsync only: until the writer acknowledged the PUT (its durable commit). */
  readonly ackP50?: number
  readonly ackP99?: number
  /** meshsync only: share (%) of the writer's group commits, and of the receivers', that took over 5 ms. */
  readonly writerSlowCommitsPct?: number | null
  readonly receiverSlowCommitsPct?: number | null
  readonly count: number
  /** CPU of the nodes (every daemon, or every gossipsub process) per message, in µs. */
  readonly cpuUsPerMessage: number | null
  /** Share of the machine's CPU capacity the nodes used during the window. */
  readonly nodesCpuPct: number | null
  /** Share of the machine's CPU capacity in use during the window, by anything (the bench and other work included). */
  readonly machineBusyPct: number | null
}

/** A window's latencies, per message (ms); `ack` for meshsync: until the writer's reply. */
type WindowLatencies = Latencies & { readonly ack?: readonly number[] }

/** Measures one window: `send` runs the messages; latencies come back from it. */
async function measured(pids: readonly number[], count: number, send: () => Promise<WindowLatencies>): Promise<WindowStats> {
  const [cpu0, m0, t0] = [processesCpuMs(pids), machineCpuTicks(), performance.now()]
  const latencies = await send()
  const [cpu1, m1, t1] = [processesCpuMs(pids), machineCpuTicks(), performance.now()]
  const first = p50p99(latencies.first)
  const ack = latencies.ack && p50p99(latencies.ack)
  const cpuMs = cpu0 === null || cpu1 === null ? null : cpu1 - cpu0
  return {
    ...p50p99(latencies.all),
    max: Math.max(...latencies.all),
    firstP50: first.p50,
    firstP99: first.p99,
    ...(ack && { ackP50: ack.p50, ackP99: ack.p99 }),
    count: latencies.all.length,
    cpuUsPerMessage: cpuMs === null ? null : (cpuMs * 1000) / count,
    nodesCpuPct: cpuMs === null ? null : (100 * cpuMs) / ((t1 - t0) * cpus().length),
    machineBusyPct: machineBusyPct(m0, m1),
  }
}

function makeValue(): { v: string } {
  return { v: randomBytes(VALUE_CHARS).toString('base64url').slice(0, VALUE_CHARS) }
}

/** The daemon side: PUTs on node 0, visibility read off the change feeds of every other node. */
class DaemonSide {
  readonly cluster: BenchCluster
  readonly #tracker: AllReceiversTracker
  readonly #feeds: ChangeFeed[]
  readonly #expected = new Map<string, string>()
  #written = 0

  private constructor(cluster: BenchCluster, tracker: AllReceiversTracker, feeds: ChangeFeed[]) {
    this.cluster = cluster
    this.#tracker = tracker
    this.#feeds = feeds
  }

  static async start(n: number, options: BenchOptions, cpuProfDir?: string): Promise<DaemonSide> {
    const cluster = await BenchCluster.start(n, { baseDir: options.baseDir, clientSockets: 16, ...(cpuProfDir !== undefined && { cpuProfDir }) })
    const tracker = new AllReceiversTracker(n - 1)
    const feeds: ChangeFeed[] = []
    const side = new DaemonSide(cluster, tracker, feeds)
    try {
      for (let r = 1; r < n; r++) {
        const node = cluster.nodes[r]
        if (!node) continue
        const feed = await ChangeFeed.open(
          node.daemon.socket,
          NS,
          (change, at) => {
            const want = side.#expected.get(change.id)
            if (want === undefined) return
            const got = (change.value as { v?: unknown } | undefined)?.v
            if (change.op !== 'upsert' || got !== want) tracker.problem(`node ${r} saw ${change.id} as ${change.op} ${JSON.stringify(change.value).slice(0, 80)}`)
            tracker.seen(change.id, r, at)
          },
          (error) => tracker.problem(`change feed of node ${r}: ${error.message}`),
        )
        feeds.push(feed)
      }
    } catch (error) {
      await side.stop()
      throw error
    }
    return side
  }

  /** Writes `count` entities at RATE/s on node 0; latencies until each was acknowledged, and visible on the first and on every other node. */
  async window(tag: string, count: number): Promise<WindowLatencies> {
    const writer = this.cluster.nodes[0]
    if (!writer) throw new Error('no writer node')
    const keys = Array.from({ length: count }, (_, i) => `${tag}-${String(i).padStart(6, '0')}`)
    const bodies = keys.map(() => {
      const value = makeValue()
      return { value, body: JSON.stringify(value) }
    })
    const acks: Promise<void>[] = []
    const ackMs: number[] = []
    let failure: unknown
    await paced(count, RATE, (i) => {
      const id = keys[i] as string
      const { value, body } = bodies[i] as { value: { v: string }; body: string }
      this.#expected.set(id, value.v)
      const sentAt = performance.now()
      this.#tracker.sent(id, sentAt)
      acks.push(
        writer.client.send('PUT', `/v1/ns/${NS}/entities/${id}`, body).then(
          (res) => {
            ackMs[i] = performance.now() - sentAt
            if (res.status !== 200) failure ??= new CheckFailed(`PUT ${id}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`)
          },
          (error: unknown) => {
            failure ??= error
          },
        ),
      )
    })
    await Promise.all(acks)
    if (failure !== undefined) throw failure
    const latencies = await this.#tracker.collect(keys, DELIVERY_TIMEOUT_MS)
    for (const k of keys) this.#expected.delete(k)
    this.#written += count
    return { ...latencies, ack: ackMs }
  }

  get pids(): number[] {
    return this.cluster.nodes.map((node) => node.daemon.pid)
  }

  /** Every node's commit-duration histogram (node 0 is the writer). */
  async commitHistograms(): Promise<CommitBuckets[]> {
    return Promise.all(
      this.cluster.nodes.map(async (node) => {
        const res = await node.client.send('GET', '/metrics', undefined)
        if (res.status !== 200) throw new CheckFailed(`GET /metrics: HTTP ${res.status}`)
        return commitBuckets(String(res.body))
      }),
    )
  }

  /** Every node holds every entity written. */
  async verify(): Promise<void> {
    for (const [i, node] of this.cluster.nodes.entries()) {
      const status = await this.cluster.status(node)
      check(status.namespaces[NS] === this.#written, `node ${i} holds ${status.namespaces[NS]} entities of ${NS}, expected ${this.#written}`)
    }
  }

  async stop(): Promise<(number | null)[]> {
    for (const feed of this.#feeds) feed.close()
    return this.cluster.stop()
  }
}

/** The baseline side: raw gossipsub publish on peer 0, receipt reported by every other peer. */
class GossipSide {
  readonly mesh: GossipMesh
  readonly #tracker: AllReceiversTracker
  #seq = 0

  private constructor(mesh: GossipMesh, tracker: AllReceiversTracker) {
    this.mesh = mesh
    this.#tracker = tracker
  }

  static async start(n: number): Promise<GossipSide> {
    const mesh = await GossipMesh.start(n)
    const tracker = new AllReceiversTracker(n - 1)
    mesh.peers.forEach((peer, r) => {
      peer.on('error', (report) => tracker.problem(`gossip peer ${r}: ${report.type === 'error' ? report.error.split('\n')[0] : ''}`))
      if (r === 0) return
      peer.on('got', (report) => {
        const at = performance.now()
        if (report.type !== 'got') return
        if (report.bytes !== PAYLOAD_BYTES) tracker.problem(`peer ${r} got ${report.bytes} bytes for message ${report.seq}`)
        tracker.seen(String(report.seq), r, at)
      })
    })
    return new GossipSide(mesh, tracker)
  }

  get pids(): number[] {
    return this.mesh.peers.map((p) => p.pid)
  }

  async window(count: number): Promise<Latencies> {
    const publisher = this.mesh.peers[0]
    if (!publisher) throw new Error('no publisher')
    const first = this.#seq
    this.#seq += count
    const keys = Array.from({ length: count }, (_, i) => String(first + i))
    await paced(count, RATE, (i) => {
      this.#tracker.sent(String(first + i), performance.now())
      publisher.send({ type: 'publish', seq: first + i, size: PAYLOAD_BYTES })
    })
    return this.#tracker.collect(keys, DELIVERY_TIMEOUT_MS)
  }

  stop(): Promise<void> {
    return this.mesh.stop()
  }
}

interface TopologyResult {
  readonly nodes: number
  readonly ours: WindowStats[]
  readonly base: WindowStats[]
}

async function measureTopology(n: number, writes: number, options: BenchOptions): Promise<TopologyResult> {
  let daemons: DaemonSide | undefined
  let gossip: GossipSide | undefined
  try {
    daemons = await DaemonSide.start(n, options)
    gossip = await GossipSide.start(n)
    // Warm-up: connections, gossip meshes, the daemons' JIT; not measured.
    await daemons.window(`warm${n}`, WARM_MESSAGES)
    await gossip.window(WARM_MESSAGES)
    const ours: WindowStats[] = []
    const base: WindowStats[] = []
    for (let run = 0; run < options.runs; run++) {
      const d = daemons
      const g = gossip
      const { o, b } = await pairedPasses(
        run,
        async () => {
          // Scraped outside the measured window, so that its CPU figure does not include them.
          const before = await d.commitHistograms()
          const stats = await measured(d.pids, writes, () => d.window(`n${n}r${run}`, writes))
          const nodes = (await d.commitHistograms()).map((after, i) => ({ before: before[i] as CommitBuckets, after }))
          return {
            ...stats,
            writerSlowCommitsPct: slowCommitsPct(nodes.slice(0, 1), SLOW_COMMIT_S),
            receiverSlowCommitsPct: slowCommitsPct(nodes.slice(1), SLOW_COMMIT_S),
          }
        },
        () => measured(g.pids, writes, () => g.window(writes)),
      )
      ours.push(o)
      base.push(b)
      options.log(
        `  ${n} nodes, run ${run + 1}/${options.runs}: meshsync p50 ${o.p50.toFixed(1)} ms p99 ${o.p99.toFixed(1)} ms (max ${o.max.toFixed(1)}; first node p99 ${o.firstP99.toFixed(1)}, writer's ack p50 ${o.ackP50?.toFixed(1)} p99 ${o.ackP99?.toFixed(1)}; commits over 5 ms: writer ${pct(o.writerSlowCommitsPct ?? null)}, receivers ${pct(o.receiverSlowCommitsPct ?? null)}; ${pct(o.nodesCpuPct)} of the CPUs, machine ${pct(o.machineBusyPct)} busy), ` +
          `gossipsub p50 ${b.p50.toFixed(1)} ms p99 ${b.p99.toFixed(1)} ms (first node p99 ${b.firstP99.toFixed(1)}; ${pct(b.nodesCpuPct)}, machine ${pct(b.machineBusyPct)}), p99 ratio ${(o.p99 / b.p99).toFixed(2)}`,
      )
    }
    await daemons.verify()
    return { nodes: n, ours, base }
  } finally {
    await gossip?.stop()
    const codes = await daemons?.stop()
    if (codes?.some((c) => c !== 0)) options.log(`  warning: daemon exit codes ${codes.join(', ')}`)
  }
}

/** One unmeasured window with every daemon under --cpu-prof; self time merged over the daemons. */
async function profilePass(n: number, writes: number, options: BenchOptions, dir: string): Promise<ProfileSummary> {
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const daemons = await DaemonSide.start(n, options, dir)
  let window: TimeWindow
  try {
    await daemons.window('pwarm', WARM_MESSAGES)
    const fromUs = monotonicUs()
    await daemons.window('prof', writes)
    window = { fromUs, toUs: monotonicUs() }
  } finally {
    await daemons.stop()
  }
  const files = (await Promise.all(daemons.cluster.nodes.map((_, i) => profilesIn(join(dir, `node-${i}`))))).flat()
  return summarizeProfiles(files, window, 20, `all ${n} daemons (merged)`)
}

function pct(n: number | null): string {
  return n === null ? '?' : `${n.toFixed(0)}%`
}

export function propagation(durationOverrideS?: number): Benchmark {
  return {
    name: 'propagation',
    title: `latency from a PUT on one daemon until the change is on the change feed of every other daemon (full mesh, ${RATE} writes/s) vs raw gossipsub publish-to-receive-by-all in the same topology`,
    async run(options: BenchOptions): Promise<BenchResult> {
      const durationS = durationOverrideS ?? (options.full ? 10 : 5)
      const writes = Math.round(durationS * RATE)
      const topologies = options.full ? [3, 5, 7] : [3, 5]
      const results: TopologyResult[] = []
      for (const n of topologies) results.push(await measureTopology(n, writes, options))
      let profile: ProfileSummary | undefined
      if (options.cpuProfDir !== undefined) {
        options.log('  profiling pass (not measured)')
        profile = await profilePass(topologies.at(-1) as number, writes, options, join(options.cpuProfDir, 'propagation'))
      }
      const figures: Figure[] = []
      for (const r of results) {
        figures.push(
          { label: `${r.nodes} nodes: meshsync p50`, unit: 'ms', summary: summarize(r.ours.map((w) => w.p50)) },
          { label: `${r.nodes} nodes: meshsync p99`, unit: 'ms', summary: summarize(r.ours.map((w) => w.p99)) },
          { label: `${r.nodes} nodes: raw gossipsub p50`, unit: 'ms', summary: summarize(r.base.map((w) => w.p50)) },
          { label: `${r.nodes} nodes: raw gossipsub p99`, unit: 'ms', summary: summarize(r.base.map((w) => w.p99)) },
          { label: `${r.nodes} nodes: p50 ratio meshsync/gossipsub`, unit: 'x', summary: summarize(r.ours.map((o, i) => o.p50 / (r.base[i] as WindowStats).p50)) },
          ratioAtMostFigure(`${r.nodes} nodes: p99 ratio meshsync/gossipsub`, summarize(r.ours.map((o, i) => o.p99 / (r.base[i] as WindowStats).p99)), P99_TARGET),
          // Where the time goes: the writer's own durable commit and reply, and the first receiver.
          ...optionalFigure(`${r.nodes} nodes: meshsync writer's ack p50`, 'ms', r.ours.map((w) => w.ackP50)),
          ...optionalFigure(`${r.nodes} nodes: meshsync writer's ack p99`, 'ms', r.ours.map((w) => w.ackP99)),
          // Commits (write + fsync) over 5 ms, from the daemons' histograms: the writer's, and the receivers', all on one disk here.
          ...optionalFigure(`${r.nodes} nodes: writer's commits over 5 ms`, '%', r.ours.map((w) => w.writerSlowCommitsPct)),
          ...optionalFigure(`${r.nodes} nodes: receivers' commits over 5 ms`, '%', r.ours.map((w) => w.receiverSlowCommitsPct)),
          { label: `${r.nodes} nodes: meshsync first node p99`, unit: 'ms', summary: summarize(r.ours.map((w) => w.firstP99)) },
          { label: `${r.nodes} nodes: raw gossipsub first node p99`, unit: 'ms', summary: summarize(r.base.map((w) => w.firstP99)) },
          ...optionalFigure(`${r.nodes} nodes: meshsync CPU per write (all daemons)`, 'µs/op', r.ours.map((w) => w.cpuUsPerMessage)),
          ...optionalFigure(`${r.nodes} nodes: gossipsub CPU per message (all nodes)`, 'µs/op', r.base.map((w) => w.cpuUsPerMessage)),
          ...optionalFigure(`${r.nodes} nodes: machine CPU busy in meshsync windows`, '%', r.ours.map((w) => w.machineBusyPct)),
          ...optionalFigure(`${r.nodes} nodes: machine CPU busy in gossipsub windows`, '%', r.base.map((w) => w.machineBusyPct)),
        )
      }
      return {
        name: 'propagation',
        title: this.title,
        params: {
          topologies,
          ratePerSecond: RATE,
          durationSeconds: durationS,
          writesPerRun: writes,
          warmupWrites: WARM_MESSAGES,
          putBodyBytes: JSON.stringify(makeValue()).length,
          gossipPayloadBytes: PAYLOAD_BYTES,
          runs: options.runs,
          measures: {
            meshsync:
              'one daemon process per node, full mesh via --bootstrap; PUT over the Unix socket on node 0 (timestamp just before sending), ' +
              'visible = the change arrives on the SSE change feed (since=now) of every other node, read by the bench; latency = last node minus send ' +
              "(first node: the first to see it; writer's ack: until the PUT's reply, sent once the write is durable on node 0)",
            baseline:
              'one process per node running libp2p with the stack of transport/mesh-transport.ts (TCP, pnet, Noise, Yamux, identify, gossipsub, same options), full mesh; ' +
              'the bench timestamps before telling node 0 (IPC) to publish, and when each other node reports (IPC) receipt; latency = last node minus send',
          },
          windows: results.map((r) => ({ nodes: r.nodes, meshsync: r.ours, gossipsub: r.base })),
        },
        figures,
        ...(profile && { profile }),
      }
    },
  }
}
