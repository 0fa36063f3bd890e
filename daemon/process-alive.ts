/**
 * Whether a process exists (signal 0: nothing is sent). EPERM means it exists under another
 * user. This process is always alive.
 */
export function isProcessAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
