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
