import { readFileSync, readdirSync } from 'node:fs'
import { lstat, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChaosNode } from '../chaos/cluster.ts'

/** One daemon at one moment (docs/operations.md, Soak test): what the soak samples once a minute. */
export interface SoakSample {
  /** ms since the workload started. */
  readonly t: number
  readonly node: number
  /** The daemon's pid (null while it is down: killed and not restarted yet). */
  readonly pid: number | null
  readonly rssBytes: number | null
  /** V8 heap in use and reserved (`/metrics`: `meshsync_process_nodejs_heap_size_*`); null when the API did not answer. */
  readonly heapUsedBytes: number | null
  readonly heapTotalBytes: number | null
  /** Open file descriptors (`/proc/<pid>/fd`). */
  readonly fds: number | null
  /** CPU time over the interval since the previous sample of the same process, as a % of one core. */
  readonly cpuPct: number | null
  /** Disk used (as `du` counts: allocated blocks) by the whole data dir, and by its LevelDB (`db/`). */
  readonly dataDirBytes: number
  readonly dbBytes: number
  /** Live entities and changes held (`/v1/status`); null when the API did not answer. */
  readonly entities: number | null
  readonly changes: number | null
}

/** Disk use of a directory tree as `du` counts it (512-byte blocks allocated); files that vanish meanwhile (a compaction) count 0. */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0
  let names: string[]
  try {
    names = await readdir(dir, { recursive: true })
  } catch {
    return 0
  }
  for (const name of names) {
    const st = await lstat(join(dir, name)).catch(() => undefined)
    if (st?.isFile()) total += st.blocks * 512
  }
  return total
}

const CLOCK_TICKS = 100

/** utime + stime of a process in seconds (`/proc/<pid>/stat`), or undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces), from field 3 on.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return undefined
  }
}

function rssAndFds(pid: number): { rss: number; fds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rss = /VmRSS:\s+(\d+) kB/.exec(status)
    return { rss: rss ? Number(rss[1]) * 1024 : 0, fds: readdirSync(`/proc/${pid}/fd`).length }
  } catch {
    return undefined
  }
}

/** A metric's value in Prometheus text (the first series of that name), or null. */
export function metricValue(text: string, name: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      const v = Number(line.slice(line.lastIndexOf(' ') + 1))
      return Number.isFinite(v) ? v : null
    }
  }
  return null
}

/** Samples the daemons of a run; keeps the previous CPU reading per process for the next interval. */
export class Sampler {
  readonly samples: SoakSample[] = []
  readonly #nodes: readonly ChaosNode[]
  readonly #t0: number
  readonly #cpu = new Map<number, { pid: number; at: number; seconds: number }>()

  constructor(nodes: readonly ChaosNode[], t0: number) {
    this.#nodes = nodes
    this.#t0 = t0
  }

  /** One sample of every node. */
  async sampleAll(): Promise<SoakSample[]> {
    const taken = await Promise.all(this.#nodes.map((n, i) => this.#sample(n, i)))
    this.samples.push(...taken)
    return taken
  }

  async #sample(n: ChaosNode, node: number): Promise<SoakSample> {
    const now = Date.now()
    const pid = n.ready ? (n.pid ?? null) : null
    // A SIGSTOPped daemon answers nothing: its /proc figures only.
    const api = pid !== null && !n.paused
    const proc = pid !== null ? rssAndFds(pid) : undefined
    const seconds = pid !== null ? cpuSeconds(pid) : undefined
    let cpuPct: number | null = null
    const last = this.#cpu.get(node)
    if (pid !== null && seconds !== undefined) {
      if (last && last.pid === pid && now > last.at) cpuPct = Math.round(((seconds - last.seconds) / ((now - last.at) / 1000)) * 1000) / 10
      this.#cpu.set(node, { pid, at: now, seconds })
    }
    const [metrics, status, dataDirBytes, dbBytes] = await Promise.all([
      api ? n.api.call('GET', '/metrics', undefined, 5_000) : undefined,
      api ? n.api.call('GET', '/v1/status', undefined, 5_000) : undefined,
      diskUsage(n.spec.dataDir),
      diskUsage(join(n.spec.dataDir, 'db')),
    ])
    const text = metrics?.kind === 'answer' && metrics.status === 200 ? metrics.text : ''
    const st = status?.kind === 'answer' && status.status === 200 ? (status.json as { entities?: number; versionVector?: Record<string, number> }) : undefined
    return {
      t: now - this.#t0,
      node,
      pid,
      rssBytes: proc?.rss ?? null,
      heapUsedBytes: text ? metricValue(text, 'meshsync_process_nodejs_heap_size_used_bytes') : null,
      heapTotalBytes: text ? metricValue(text, 'meshsync_process_nodejs_heap_size_total_bytes') : null,
      fds: proc?.fds ?? null,
      cpuPct,
      dataDirBytes,
      dbBytes,
      entities: st?.entities ?? null,
      changes: st?.versionVector ? Object.values(st.versionVector).reduce((a, b) => a + b, 0) : null,
    }
  }
}
