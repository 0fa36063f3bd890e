// Plain JavaScript on purpose, like meshsync.mjs: it runs before any TypeScript is loaded.
import { availableParallelism } from 'node:os'

/**
 * V8 flags the daemon runs with. On a machine with 2 CPUs or fewer, V8's helper threads
 * (concurrent marking, parallel scavenges, background compilation) cost more than the work they
 * take off the main thread: every hand-off wakes a thread that has no idle CPU to run on.
 * `--single-threaded` does that work on the main thread instead. Measured on a 2-vCPU VM
 * (`npm run bench`, two alternating pairs of runs): 3 replicating daemons used 8% less CPU per
 * converged write (783-807 us against 837-903); one daemon's acked PUTs did not change (its
 * helper threads are nearly idle once warm). `MESHSYNC_V8_FLAGS` replaces the choice
 * (space-separated flags; empty for none).
 */
export function daemonV8Flags(env = process.env, cpus = availableParallelism()) {
  const chosen = env.MESHSYNC_V8_FLAGS ?? (cpus <= 2 ? '--single-threaded' : '')
  return chosen.split(/\s+/).filter((flag) => flag.length > 0)
}

/**
 * The argument list (argv[0] first) that restarts this process with `flags` in front of its own
 * node options, or undefined when it already runs with all of them.
 */
export function restartArgs(flags, execPath = process.execPath, execArgv = process.execArgv, argv = process.argv) {
  if (flags.every((flag) => execArgv.includes(flag))) return undefined
  return [execPath, ...flags.filter((flag) => !execArgv.includes(flag)), ...execArgv, ...argv.slice(1)]
}

/**
 * For `meshsync start`: replaces this process (same pid, same open files, nothing run yet) with
 * one whose V8 has the daemon's flags. V8 reads them only at start-up, so they cannot be set from
 * inside. Without `process.execve` (Windows, older Node), or when it fails, the daemon runs
 * without them (a failure is said in one line on stderr).
 */
export function applyDaemonV8Flags(execve = process.execve, flags = daemonV8Flags()) {
  if (typeof execve !== 'function') return
  const args = restartArgs(flags)
  if (args === undefined) return
  try {
    execve(process.execPath, args, process.env)
  } catch (error) {
    console.error(`meshsync: running without the V8 flags ${flags.join(' ')}: restarting with them failed (${error?.message ?? error})`)
  }
}
