/**
 * The scale harness (`npm run scale -- --nodes 48`): N daemons on loopback, every node
 * bootstrapped to node 0 only, mDNS off, and the figures of the scale table in docs/sync-protocol.md (Membership and the overlay) —
 * membership time, peers per node, propagation to all, bulk convergence, idle sessions, bytes, CPU
 * and RSS per node, and what happens when node 0 is killed. Writes bench/results/scale-<date>-<N>.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { killChildren } from '../bench/children.ts'
import { processCpuMs } from '../bench/cpu.ts'
import { percentile } from '../bench/stats.ts'
import { ChangeWatch } from './change-watch.ts'
import { killNode, rssBytes, startScaleCluster, stopScaleCluster, type ScaleNode } from './cluster.ts'

interface PeerView {
  readonly peerId: string
  readonly connected: boolean
}
interface Status {
  readonly peerId: string
  readonly versionVector: Readonly<Record<string, number>>
}

const { values: opts } = parseArgs({
  options: {
    nodes: { type: 'string', default: '8' },
    low: { type: 'string', default: '6' },
    high: { type: 'string' },
    writes: { type: 'string', default: '20' },
    idle: { type: 'string', default: '60' },
    parallel: { type: 'string', default: '4' },
    label: { type: 'string', default: '' },
    'write-timeout': { type: 'string', default: '20' },
  },
})
const N = Number(opts.nodes)
const LOW = Number(opts.low)
const WRITES = Number(opts.writes)
const IDLE_S = Number(opts.idle)
const WRITE_TIMEOUT_MS = Number(opts['write-timeout']) * 1000
const p2p: Record<string, unknown> = {}
if (opts.high !== undefined) Object.assign(p2p, { minConnections: LOW, maxConnections: Number(opts.high) })

const ms = (n: number): number => Math.round(n * 10) / 10
const median = (values: number[]): number => percentile([...values].sort((a, b) => a - b), 50)
/** p50 / p99 / max of propagation times; a write not seen on all within --write-timeout counts as Infinity (null in the JSON). */
const summary = (values: number[]): { p50: number | null; p99: number | null; max: number | null; timedOut: number; all: (number | null)[] } => {
  const sorted = [...values].sort((a, b) => a - b)
  const fin = (v: number): number | null => (Number.isFinite(v) ? ms(v) : null)
  return {
    p50: fin(percentile(sorted, 50)),
    p99: fin(percentile(sorted, 99)),
    max: fin(sorted[sorted.length - 1] ?? 0),
    timedOut: values.filter((v) => !Number.isFinite(v)).length,
    all: values.map(fin),
  }
}

async function status(node: ScaleNode): Promise<Status> {
  return (await node.client.expect('GET', '/v1/status', undefined)) as Status
}
async function connectedPeers(node: ScaleNode): Promise<string[]> {
  const peers = (await node.client.expect('GET', '/v1/peers', undefined)) as PeerView[]
  return peers.filter((p) => p.connected).map((p) => p.peerId)
}
async function metricSum(node: ScaleNode, name: string): Promise<number> {
  const res = await node.client.send('GET', '/metrics')
  const text = typeof res.body === 'string' ? res.body : String(res.body)
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0
  }
  return sum
}

/** Polls until every node of `nodes` has `origin` at `seq` or more; resolves with the ms it took from `t0`. */
async function waitVisible(nodes: readonly ScaleNode[], origin: string, seq: number, t0: number, timeoutMs = 60_000): Promise<number> {
  const pending = new Set(nodes)
  for (;;) {
    await Promise.all([...pending].map(async (node) => {
      if (((await status(node)).versionVector[origin] ?? 0) >= seq) pending.delete(node)
    }))
    const now = performance.now()
    if (pending.size === 0) return now - t0
    if (now - t0 > timeoutMs) throw new Error(`${pending.size} node(s) did not see ${origin}:${seq} within ${timeoutMs} ms`)
    // Every node's status each time: a short pause keeps the harness's own CPU out of the figures.
    await sleep(50)
  }
}

/**
 * Writes `count` entities on `writer`, one at a time; for each, the ms from the write until the
 * change feed of every node of `nodes` showed it (Infinity: not within --write-timeout).
 */
async function propagation(writer: ScaleNode, nodes: readonly ScaleNode[], count: number, tag: string): Promise<number[]> {
  const watches = await Promise.all(nodes.map((node) => ChangeWatch.open(node.daemon.socket, 'scale')))
  const times: number[] = []
  try {
    for (let i = 0; i < count; i++) {
      const id = `${tag}-${i}`
      const t0 = performance.now()
      await writer.client.expect('PUT', `/v1/ns/scale/entities/${id}`, JSON.stringify({ v: i }))
      const arrivals = await Promise.all(watches.map((watch) => watch.until(id, WRITE_TIMEOUT_MS)))
      times.push(arrivals.some((t) => t === undefined) ? Infinity : Math.max(...(arrivals as number[])) - t0)
      await sleep(100 + Math.random() * 100)
    }
  } finally {
    for (const watch of watches) watch.close()
  }
  return times
}

function connectedComponents(graph: Map<string, string[]>): number {
  const seen = new Set<string>()
  let components = 0
  for (const start of graph.keys()) {
    if (seen.has(start)) continue
    components++
    const stack = [start]
    seen.add(start)
    while (stack.length > 0) {
      for (const next of graph.get(stack.pop() as string) ?? []) {
        if (graph.has(next) && !seen.has(next)) {
          seen.add(next)
          stack.push(next)
        }
      }
    }
  }
  return components
}

/** The connection graph among the nodes alive (each node's connected peers, both ends counted). */
async function graphOf(nodes: readonly ScaleNode[]): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>()
  await Promise.all(nodes.map(async (node) => graph.set(node.daemon.info.peerId, await connectedPeers(node))))
  for (const [a, peers] of graph) for (const b of peers) if (graph.has(b) && !(graph.get(b) as string[]).includes(a)) (graph.get(b) as string[]).push(a)
  return graph
}

async function main(): Promise<void> {
  const baseDir = await mkdtemp(join(tmpdir(), 'meshsync-scale-'))
  const want = Math.min(N - 1, LOW)
  const result: Record<string, unknown> = { nodes: N, lowWatermark: LOW, p2p, label: opts.label, date: new Date().toISOString() }
  console.log(`starting ${N} daemons (bootstrap to node 0 only, mDNS off)...`)
  const nodes = await startScaleCluster(N, { baseDir, parallel: Number(opts.parallel), p2p }).catch(async (error: unknown) => {
    await rm(baseDir, { recursive: true, force: true })
    throw error
  })
  try {
    const started = performance.now()
    let degrees: number[] = []
    let membershipMs: number | null = null
    let membersMs: number | null = null
    for (;;) {
      degrees = await Promise.all(nodes.map(async (node) => (await connectedPeers(node)).length))
      const now = performance.now()
      if (membershipMs === null && degrees.every((d) => d >= want)) membershipMs = ms(now - started)
      // meshsync_members_known: the members each node knows (absent before the overlay existed).
      if (membersMs === null && (await Promise.all(nodes.map((node) => metricSum(node, 'meshsync_members_known')))).every((m) => m >= N - 1)) membersMs = ms(now - started)
      if ((membershipMs !== null && membersMs !== null) || now - started > 60_000) break
      // Each round asks every node twice (peers, metrics): at 48 nodes a tighter loop loads the daemons it measures.
      await sleep(250)
    }
    Object.assign(result, { membershipMs, membersKnownMs: membersMs })
    console.log(`every node has >= ${want} connections: ${membershipMs === null ? 'not within 60 s' : `${membershipMs} ms`} after the last start`)
    console.log(`every node knows all ${N - 1} other members: ${membersMs === null ? 'not within 60 s' : `${membersMs} ms`} after the last start`)
    await sleep(5000)
    degrees = await Promise.all(nodes.map(async (node) => (await connectedPeers(node)).length))
    result.peersPerNode = { min: Math.min(...degrees), median: median(degrees), max: Math.max(...degrees), all: degrees }
    console.log(`connected peers per node: min ${Math.min(...degrees)} / median ${median(degrees)} / max ${Math.max(...degrees)}`)

    const first = nodes[0] as ScaleNode
    const last = nodes[N - 1] as ScaleNode
    const fromFirst = summary(await propagation(first, nodes, WRITES, 'first'))
    const fromLast = summary(await propagation(last, nodes, WRITES, 'last'))
    Object.assign(result, { writeOnNode0: fromFirst, writeOnLastNode: fromLast })
    const over = `>${WRITE_TIMEOUT_MS}`
    const show = (s: ReturnType<typeof summary>): string => `p50 ${s.p50 ?? over} / p99 ${s.p99 ?? over} / max ${s.max ?? over} ms${s.timedOut > 0 ? ` (${s.timedOut} of ${WRITES} not on all within ${WRITE_TIMEOUT_MS} ms)` : ''}`
    console.log(`write on node 0 visible on all: ${show(fromFirst)}`)
    console.log(`write on node ${N - 1} visible on all: ${show(fromLast)}`)

    const ops = Array.from({ length: 2000 }, (_, i) => ({ op: 'put', ns: 'bulk', id: `b-${i}`, value: { v: i, pad: 'x'.repeat(64) } }))
    const received = async (): Promise<{ gossip: number; sync: number }> => {
      const [gossip, sync] = await Promise.all([
        Promise.all(nodes.map((node) => metricSum(node, 'meshsync_gossip_changes_received_total'))),
        Promise.all(nodes.map((node) => metricSum(node, 'meshsync_sync_records_received_total'))),
      ])
      return { gossip: gossip.reduce((a, b) => a + b, 0), sync: sync.reduce((a, b) => a + b, 0) }
    }
    const r0 = await received()
    const before = (await status(first)).versionVector[first.daemon.info.nodeId] ?? 0
    const t0 = performance.now()
    await first.client.expect('POST', '/v1/batch', JSON.stringify({ ops }))
    const bulkMs = await waitVisible(nodes, first.daemon.info.nodeId, before + 2000, t0, 180_000).then(ms, () => null)
    const r1 = await received()
    // How the bulk travelled: change records received by gossip and by sync sessions, summed over the nodes.
    const bulkRecords = { byGossip: r1.gossip - r0.gossip, bySync: r1.sync - r0.sync }
    Object.assign(result, { bulk2000Ms: bulkMs, bulkRecords })
    console.log(`2,000 batched writes on node 0 converged on all: ${bulkMs ?? '> 180000'} ms (records received by gossip ${bulkRecords.byGossip}, by sync ${bulkRecords.bySync})`)

    await sleep(5000)
    const sample = async (): Promise<{ sessions: number[]; bytes: number[]; cpu: number[] }> => {
      const sessions = await Promise.all(nodes.map((node) => metricSum(node, 'meshsync_sync_sessions_total')))
      const bytes = await Promise.all(nodes.map(async (node) => (await metricSum(node, 'meshsync_peer_sync_bytes_in_total')) + (await metricSum(node, 'meshsync_peer_sync_bytes_out_total'))))
      return { sessions, bytes, cpu: nodes.map((node) => processCpuMs(node.daemon.pid) ?? 0) }
    }
    const s0 = await sample()
    const idleStart = performance.now()
    await sleep(IDLE_S * 1000)
    const s1 = await sample()
    const minutes = (performance.now() - idleStart) / 60_000
    const perMin = (a: number[], b: number[]): number[] => a.map((v, i) => ((b[i] ?? 0) - v) / minutes)
    const sessions = perMin(s0.sessions, s1.sessions)
    const bytes = perMin(s0.bytes, s1.bytes)
    const cpuPct = perMin(s0.cpu, s1.cpu).map((cpuMsPerMin) => cpuMsPerMin / 600)
    const range = (v: number[]): { min: number; median: number; max: number; node0: number } => ({ min: ms(Math.min(...v)), median: ms(median(v)), max: ms(Math.max(...v)), node0: ms(v[0] ?? 0) })
    const rss = nodes.map((node) => (rssBytes(node.daemon.pid) ?? 0) / 2 ** 20)
    // Where the RSS goes: the V8 heap in use, its total, and memory outside it (Buffers, LevelDB's own is not counted).
    const mb = async (name: string): Promise<number[]> => (await Promise.all(nodes.map((node) => metricSum(node, name)))).map((b) => b / 2 ** 20)
    const memory = {
      heapUsedMB: range(await mb('meshsync_process_nodejs_heap_size_used_bytes')),
      heapTotalMB: range(await mb('meshsync_process_nodejs_heap_size_total_bytes')),
      externalMB: range(await mb('meshsync_process_nodejs_external_memory_bytes')),
    }
    Object.assign(result, { idle: { seconds: IDLE_S, sessionsPerMin: range(sessions), syncBytesPerMin: range(bytes), cpuPercent: range(cpuPct), rssMB: range(rss), memory } })
    console.log(`idle, per node per minute: sync sessions ${JSON.stringify(range(sessions))}, sync bytes ${JSON.stringify(range(bytes))}`)
    console.log(`idle CPU % of a core ${JSON.stringify(range(cpuPct))}, RSS MB ${JSON.stringify(range(rss))}`)
    console.log(`idle memory MB (V8 heap used / total, external): ${JSON.stringify(memory)}`)

    await killNode(first)
    const survivors = nodes.slice(1)
    const killed = performance.now()
    let components = 0
    for (;;) {
      components = connectedComponents(await graphOf(survivors))
      if (components === 1 || performance.now() - killed > 30_000) break
      await sleep(200)
    }
    const survivorDegrees = await Promise.all(survivors.map(async (node) => (await connectedPeers(node)).filter((p) => p !== first.daemon.info.peerId).length))
    const survivorWrite = summary(await propagation(last, survivors, 1, 'survivor')).max
    result.writeTimeoutMs = WRITE_TIMEOUT_MS
    result.killNode0 = { components, survivorPeers: { min: Math.min(...survivorDegrees), median: median(survivorDegrees), max: Math.max(...survivorDegrees) }, writeOnSurvivorMs: survivorWrite }
    console.log(`node 0 killed: survivors form ${components} connected component(s), peers min ${Math.min(...survivorDegrees)}; a write on node ${N - 1} reached all survivors: ${survivorWrite === null ? `no (${WRITE_TIMEOUT_MS} ms)` : `${survivorWrite} ms`}`)
  } finally {
    await stopScaleCluster(nodes.filter((n) => n.alive))
    await rm(baseDir, { recursive: true, force: true })
  }
  const dir = resolve(import.meta.dirname, '..', '..', 'bench', 'results')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `scale-${new Date().toISOString().slice(0, 10)}-${N}${opts.label ? `-${opts.label}` : ''}.json`)
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`)
  console.log(`results: ${file}`)
}

process.on('SIGINT', () => {
  killChildren()
  process.exit(130)
})
main().catch((error: unknown) => {
  console.error(error)
  killChildren()
  process.exitCode = 1
})
