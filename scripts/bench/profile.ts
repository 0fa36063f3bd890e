import { mkdir, readdir, readFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'

/** A function's share of a CPU profile. */
export interface ProfileEntry {
  readonly function: string
  readonly location: string
  readonly selfMs: number
  /** Percent of the sampled time. */
  readonly selfPct: number
}

export interface ProfileSummary {
  /** The profile file, or the files merged (comma-separated). */
  readonly file: string
  /** Every profile merged, when there are several. */
  readonly files?: readonly string[]
  /** Whose time it is (default: "the daemon"). */
  readonly subject?: string
  /** True when only the samples of the measured window were counted (startup and checks left out). */
  readonly windowed: boolean
  readonly totalMs: number
  readonly top: readonly ProfileEntry[]
}

interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  }[]
  readonly startTime: number
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

/** A span of the monotonic clock, in µs (see `monotonicUs`). */
export interface TimeWindow {
  readonly fromUs: number
  readonly toUs: number
}

const REPO_ROOT = resolve(import.meta.dirname, '..', '..')

/**
 * Self time per function (summed over every call site of it) of the newest `.cpuprofile` in `dir`,
 * counting only samples inside `window` when given (and when any fall inside it).
 */
export async function summarizeProfileDir(dir: string, window?: TimeWindow, top = 15): Promise<ProfileSummary> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort()
  const file = files.at(-1)
  if (file === undefined) throw new Error(`no .cpuprofile written in ${dir}`)
  return summarizeProfiles([join(dir, file)], window, top)
}

/**
 * Self time per function of several profiles merged (e.g. every daemon of a cluster, each with its
 * own profile), counting only samples inside `window` when given (and when any fall inside it).
 */
export async function summarizeProfiles(paths: readonly string[], window?: TimeWindow, top = 15, subject?: string): Promise<ProfileSummary> {
  if (paths.length === 0) throw new Error('no .cpuprofile to summarize')
  const selfUs = new Map<string, number>()
  let totalUs = 0
  let windowed = window !== undefined
  for (const path of paths) {
    const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile
    const byNode = new Map(profile.nodes.map((n) => [n.id, n.callFrame]))
    // Sample i is taken at startTime + timeDeltas[0..i]; timeDeltas[i + 1] is the time it stands for.
    const stamps: number[] = []
    let t = profile.startTime
    for (const dt of profile.timeDeltas) stamps.push((t += dt))
    const inWindow = (i: number): boolean => window === undefined || ((stamps[i] ?? 0) >= window.fromUs && (stamps[i] ?? 0) <= window.toUs)
    const useWindow = window !== undefined && profile.samples.some((_, i) => inWindow(i))
    if (!useWindow) windowed = false
    profile.samples.forEach((nodeId, i) => {
      if (useWindow && !inWindow(i)) return
      const dt = profile.timeDeltas[i + 1] ?? 0
      const frame = byNode.get(nodeId)
      if (!frame) return
      const location = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : ''
      const key = `${frame.functionName || '(anonymous)'}\u0000${location}`
      selfUs.set(key, (selfUs.get(key) ?? 0) + dt)
      totalUs += dt
    })
  }
  const entries = [...selfUs]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, us]) => {
      const [fn, location] = key.split('\u0000') as [string, string]
      return { function: fn, location, selfMs: round(us / 1000), selfPct: round((100 * us) / Math.max(1, totalUs)) }
    })
  const file = paths.length === 1 ? (paths[0] as string) : `${commonDir(paths)} (${paths.length} profiles)`
  return { file, ...(paths.length > 1 && { files: [...paths] }), ...(subject !== undefined && { subject }), windowed, totalMs: round(totalUs / 1000), top: entries }
}

/** Every `.cpuprofile` directly inside `dir`. */
export async function profilesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort().map((f) => join(dir, f))
}

function commonDir(paths: readonly string[]): string {
  const parts = paths.map((p) => p.split('/'))
  const first = parts[0] ?? []
  let n = 0
  while (n < first.length - 1 && parts.every((p) => p[n] === first[n])) n++
  return first.slice(0, n).join('/')
}

function shortUrl(url: string): string {
  const path = url.startsWith('file://') ? new URL(url).pathname : url
  const rel = relative(REPO_ROOT, path)
  return rel.startsWith('..') ? path : rel
}

function round(n: number): number {
  return Math.round(n * 10) / 10
}

/**
 * The unmeasured profiling pass of a one-daemon benchmark when `--cpu-prof` asked for it: `pass`
 * runs with the daemon writing its profile into `<cpuProfDir>/<name>`; the summary counts the
 * samples of the pass's measured window only.
 */
export async function profilingPass(
  options: { readonly cpuProfDir?: string | undefined; log(line: string): void },
  name: string,
  pass: (dir: string) => Promise<{ readonly window: TimeWindow }>,
): Promise<ProfileSummary | undefined> {
  if (options.cpuProfDir === undefined) return undefined
  const dir = join(options.cpuProfDir, name)
  await mkdir(dir, { recursive: true })
  options.log('  profiling pass (not measured)')
  const { window } = await pass(dir)
  return summarizeProfileDir(dir, window)
}
