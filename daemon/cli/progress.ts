import type { OperationProgress } from '../backup/operations.ts'

/** Where progress goes: a stream and whether it is a terminal. */
export interface ProgressOutput {
  readonly isTTY?: boolean
  write(text: string): unknown
}

/** How often progress is drawn on a terminal, and printed as a line off one (docs/cli.md, Backups). */
export const TTY_INTERVAL_MS = 500
export const LINE_INTERVAL_MS = 10_000

/**
 * Progress of a long operation (docs/cli.md, Backups), read by `poll` (the daemon's
 * `/v1/status`, or an offline service's status): on a terminal one line redrawn in place, off
 * one a plain line every `lineIntervalMs` (like restic), each with counts, bytes and an ETA.
 * Returns the function that stops it (and clears the terminal line).
 */
export function showProgress(
  label: string,
  poll: () => Promise<OperationProgress | null> | OperationProgress | null,
  out: ProgressOutput = process.stderr,
  options: { intervalMs?: number } = {},
): () => void {
  const tty = out.isTTY === true
  const interval = options.intervalMs ?? (tty ? TTY_INTERVAL_MS : LINE_INTERVAL_MS)
  let drawn = false
  let stopped = false
  const tick = async (): Promise<void> => {
    let p: OperationProgress | null
    try {
      p = await poll()
    } catch {
      return // the answer comes with the operation's own result
    }
    if (stopped || p === null) return
    const line = `${label}: ${formatProgress(p)}`
    if (tty) {
      out.write(`\r\x1b[K${line}`)
      drawn = true
    } else out.write(`${line}\n`)
  }
  const timer = setInterval(() => void tick(), interval)
  timer.unref()
  return () => {
    stopped = true
    clearInterval(timer)
    if (drawn) out.write('\r\x1b[K')
  }
}

/** `1,200/5,000 entities (24%), 3.1 MiB, 12s elapsed, ETA 38s` (counts, bytes, ETA). */
export function formatProgress(p: OperationProgress): string {
  const unit = p.kind === 'verify' ? 'objects' : 'entities'
  const count = p.total !== null && p.total > 0 ? `${num(p.done)}/${num(p.total)} ${unit} (${Math.min(100, Math.floor((100 * p.done) / p.total))}%)` : `${num(p.done)} ${unit}`
  const eta = p.etaMs !== null ? `ETA ${duration(p.etaMs)}` : 'ETA unknown'
  return `${count}, ${formatBytes(p.bytes)}, ${duration(p.elapsedMs)} elapsed, ${eta}`
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}

function num(n: number): string {
  return n.toLocaleString('en-US')
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}
