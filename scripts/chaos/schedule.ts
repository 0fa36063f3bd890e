import { createHash } from 'node:crypto'
import * as prng from 'lib0/prng'

/**
 * Fault kinds. Network kinds need netns mode, and so does a full disk (every node's data dir is a
 * small tmpfs of its own there); the others are process-level.
 */
export const NETWORK_FAULTS = ['partition-halves', 'isolate-one', 'one-way-cut', 'ring-majorities', 'packet-loss', 'link-down'] as const
export const DISK_FAULTS = ['disk-full'] as const
export const PROCESS_FAULTS = ['kill9-restart', 'sigstop', 'restart-all'] as const
/**
 * Faults of the overlay: kill -9 every peer one node is connected to at that moment (restarted at
 * the heal). Only in clusters of {@link NEIGHBOURHOOD_MIN_NODES} or more, where a node's
 * neighbourhood is not the whole cluster (smaller runs keep their seeds' schedules).
 */
export const OVERLAY_FAULTS = ['kill-neighbourhood'] as const
export const NEIGHBOURHOOD_MIN_NODES = 7
export type FaultKind = (typeof NETWORK_FAULTS)[number] | (typeof DISK_FAULTS)[number] | (typeof PROCESS_FAULTS)[number] | (typeof OVERLAY_FAULTS)[number]

/** One fault: injected at `at` ms after the workload starts, healed `duration` ms later. */
export interface ScheduledFault {
  readonly index: number
  readonly kind: FaultKind
  readonly at: number
  readonly duration: number
  /** Nodes it acts on (meaning per kind). */
  readonly nodes: readonly number[]
  /** Partition groups (partition-halves), directed cuts "a>b" (one-way-cut, ring), or []. */
  readonly groups: readonly (readonly number[])[]
  readonly cuts: readonly string[]
  /** Packet loss percentage (packet-loss). */
  readonly lossPct: number
}

export interface ScheduleOptions {
  readonly seed: number
  readonly nodes: number
  /** Length of the fault phase in ms. */
  readonly durationMs: number
  readonly netns: boolean
  /** Whether every node has a small disk of its own that can fill up (default: `netns`). */
  readonly disks?: boolean
  /** Only these kinds (those the mode allows); default: every kind the mode allows. */
  readonly kinds?: readonly FaultKind[]
  /** Longest and shortest fault, gap between faults (ms). */
  readonly minFaultMs?: number
  readonly maxFaultMs?: number
  readonly minGapMs?: number
  readonly maxGapMs?: number
}

/** The fault kinds a run can inject: network kinds need netns mode, a full disk the tmpfs data disks, a neighbourhood kill a cluster of 7 or more. */
export function possibleKinds(netns: boolean, disks: boolean, nodes = 0): FaultKind[] {
  return [...(netns ? NETWORK_FAULTS : []), ...(disks ? DISK_FAULTS : []), ...PROCESS_FAULTS, ...(nodes >= NEIGHBOURHOOD_MIN_NODES ? OVERLAY_FAULTS : [])]
}

/**
 * The fault schedule of a seed: a function of the options only (no clock, no Math.random), so
 * the same seed always gives the same schedule. Faults follow one another (each healed before
 * the next starts); process faults come more rarely than network faults in netns mode.
 */
export function makeSchedule(options: ScheduleOptions): ScheduledFault[] {
  const gen = prng.create(options.seed >>> 0)
  const n = options.nodes
  const minFault = options.minFaultMs ?? 2_000
  const maxFault = options.maxFaultMs ?? 7_000
  const minGap = options.minGapMs ?? 1_000
  const maxGap = options.maxGapMs ?? 3_000
  const allowed = possibleKinds(options.netns, options.disks ?? options.netns, options.nodes)
  const kinds = options.kinds ? allowed.filter((k) => options.kinds?.includes(k)) : allowed
  if (kinds.length === 0) throw new Error(`no fault kind of ${JSON.stringify(options.kinds)} is possible in ${options.netns ? 'netns' : 'loopback'} mode`)
  const weights = kinds.map((k) => (k === 'restart-all' || k === 'kill-neighbourhood' ? 1 : k === 'kill9-restart' || k === 'sigstop' ? (options.netns ? 2 : 4) : k === 'disk-full' ? 2 : 3))
  const total = weights.reduce((a, b) => a + b, 0)
  const out: ScheduledFault[] = []
  let t = prng.int32(gen, minGap, maxGap)
  while (true) {
    const duration = prng.int32(gen, minFault, maxFault)
    if (t + duration > options.durationMs) break
    let pick = prng.int32(gen, 0, total - 1)
    let kind = kinds[0] as FaultKind
    for (let i = 0; i < kinds.length; i++) {
      pick -= weights[i] as number
      if (pick < 0) {
        kind = kinds[i] as FaultKind
        break
      }
    }
    const all = Array.from({ length: n }, (_, i) => i)
    const shuffled = shuffle(gen, all)
    let nodes: number[] = []
    let groups: number[][] = []
    let cuts: string[] = []
    let lossPct = 0
    switch (kind) {
      case 'partition-halves': {
        const cut = prng.int32(gen, 1, Math.max(1, Math.floor(n / 2)))
        groups = [shuffled.slice(0, cut).sort(), shuffled.slice(cut).sort()]
        break
      }
      case 'isolate-one':
        nodes = [shuffled[0] as number]
        groups = [[shuffled[0] as number], shuffled.slice(1).sort()]
        break
      case 'one-way-cut': {
        // Some of the nodes stop hearing from (or reaching) a random set of others.
        const a = shuffled[0] as number
        const others = shuffled.slice(1, 1 + prng.int32(gen, 1, Math.max(1, n - 2)))
        const inbound = prng.bool(gen)
        nodes = [a]
        cuts = others.map((b) => (inbound ? `${b}>${a}` : `${a}>${b}`))
        break
      }
      case 'ring-majorities': {
        // Nodes on a ring; each sees only its neighbours (within floor(n/2) hops), so every node
        // has a majority, but no two majorities are the same (Jepsen's majorities-ring).
        const reach = Math.floor(n / 2)
        const ring = shuffled
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            if (i === j) continue
            const d = Math.min(Math.abs(i - j), n - Math.abs(i - j))
            if (d > Math.max(1, reach - 1)) cuts.push(`${ring[i]}>${ring[j]}`)
          }
        }
        groups = [ring]
        break
      }
      case 'packet-loss':
        nodes = shuffled.slice(0, prng.int32(gen, 1, n)).sort()
        lossPct = prng.int32(gen, 5, 30)
        break
      case 'link-down':
      case 'disk-full':
      case 'kill9-restart':
      case 'sigstop':
        nodes = shuffled.slice(0, prng.int32(gen, 1, Math.max(1, Math.floor((n - 1) / 2)))).sort()
        break
      case 'restart-all':
        nodes = all
        break
      case 'kill-neighbourhood':
        // The node whose peers die; who they are is read when the fault is injected.
        nodes = [shuffled[0] as number]
        break
    }
    out.push({ index: out.length, kind, at: t, duration, nodes, groups, cuts, lossPct })
    t += duration + prng.int32(gen, minGap, maxGap)
  }
  return out
}

function shuffle<T>(gen: prng.PRNG, items: readonly T[]): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = prng.int32(gen, 0, i)
    ;[a[i], a[j]] = [a[j] as T, a[i] as T]
  }
  return a
}

/** A short hash of a schedule (two runs of one seed print the same). */
export function scheduleHash(schedule: readonly ScheduledFault[]): string {
  return createHash('sha256').update(JSON.stringify(schedule)).digest('hex').slice(0, 16)
}
