import type { ChildProcess } from 'node:child_process'

/** Child processes the bench started (daemons, baseline peers) and has not yet seen exit. */
const live = new Set<ChildProcess>()

/** Tracks `child` until it exits; whatever is still running when the bench exits is SIGKILLed. */
export function trackChild(child: ChildProcess): void {
  live.add(child)
  child.once('exit', () => live.delete(child))
}

/** SIGKILLs every tracked child still running (on exit, or when the bench is interrupted). */
export function killChildren(): void {
  for (const child of live) child.kill('SIGKILL')
  live.clear()
}

process.once('exit', killChildren)
