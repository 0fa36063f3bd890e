import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

let clockTicks: number | undefined

/** Clock ticks per second of /proc times (`getconf CLK_TCK`, almost always 100). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/**
 * CPU time (user + system, every thread: LevelDB's background compaction included) another
 * process has used so far, in ms; null where /proc is not there. Resolution: one clock tick.
 */
export function processCpuMs(pid: number): number | null {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // Fields after "(comm)": state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  return Number.isFinite(ticks) ? (ticks * 1000) / ticksPerSecond() : null
}

/** CPU time this process has used so far (every thread), in ms. */
export function selfCpuMs(): number {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

/** Monotonic clock in µs, the clock V8's CPU profiles are stamped with on Linux. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/** CPU used between two readings, per operation, in µs (null when a reading is missing). */
export function cpuUsPerOp(before: number | null, after: number | null, ops: number): number | null {
  return before === null || after === null ? null : ((after - before) * 1000) / ops
}

/** Busy and total jiffies of the whole machine so far (all CPUs, /proc/stat); null where /proc is not there. */
export function machineCpuTicks(): { busy: number; total: number } | null {
  let stat: string
  try {
    stat = readFileSync('/proc/stat', 'utf8')
  } catch {
    return null
  }
  const line = stat.split('\n', 1)[0] ?? ''
  const fields = line.trim().split(/\s+/).slice(1).map(Number)
  if (fields.length < 5 || fields.some((n) => !Number.isFinite(n))) return null
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0)
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0)
  return { busy: total - idle, total }
}

/** Percent of the machine's CPU capacity (every core) in use between two readings; null when a reading is missing. */
export function machineBusyPct(before: { busy: number; total: number } | null, after: { busy: number; total: number } | null): number | null {
  if (before === null || after === null || after.total <= before.total) return null
  return (100 * (after.busy - before.busy)) / (after.total - before.total)
}

/** CPU time of several processes so far, summed, in ms; null when any cannot be read. */
export function processesCpuMs(pids: readonly number[]): number | null {
  let sum = 0
  for (const pid of pids) {
    const ms = processCpuMs(pid)
    if (ms === null) return null
    sum += ms
  }
  return sum
}
