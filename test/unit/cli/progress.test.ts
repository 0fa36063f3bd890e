import { afterEach, describe, expect, it, vi } from 'vitest'
import type { OperationProgress } from '../../../daemon/backup/operations.ts'
import { formatProgress, LINE_INTERVAL_MS, showProgress, TTY_INTERVAL_MS } from '../../../daemon/cli/progress.ts'

/** docs/cli.md (Backups): progress with counts, bytes and ETA; plain lines when not on a terminal. */

const running = (over: Partial<OperationProgress> = {}): OperationProgress => ({
  kind: 'backup',
  phase: 'backup',
  startedAt: '2026-01-01T00:00:00.000Z',
  done: 12_000,
  total: 48_000,
  bytes: 3 * 1024 * 1024,
  elapsedMs: 20_000,
  etaMs: 60_000,
  ...over,
})

afterEach(() => {
  vi.useRealTimers()
})

describe('CLI progress', () => {
  it('says counts, bytes, elapsed time and ETA', () => {
    expect(formatProgress(running())).toBe('12,000/48,000 entities (25%), 3.0 MiB, 20s elapsed, ETA 1m00s')
    expect(formatProgress(running({ total: null, etaMs: null, done: 7 }))).toBe('7 entities, 3.0 MiB, 20s elapsed, ETA unknown')
    expect(formatProgress(running({ kind: 'verify', done: 3, total: 4, bytes: 100, elapsedMs: 3_700_000, etaMs: 1_200_000 }))).toBe('3/4 objects (75%), 100 B, 1h01m elapsed, ETA 20m00s')
  })

  it('off a terminal: one plain line per interval, nothing to clear', async () => {
    vi.useFakeTimers()
    const written: string[] = []
    let p: OperationProgress | null = null
    const stop = showProgress('backup', () => p, { isTTY: false, write: (t) => written.push(t) })
    await vi.advanceTimersByTimeAsync(LINE_INTERVAL_MS)
    expect(written).toEqual([]) // nothing running yet
    p = running()
    await vi.advanceTimersByTimeAsync(LINE_INTERVAL_MS)
    p = running({ done: 24_000 })
    await vi.advanceTimersByTimeAsync(LINE_INTERVAL_MS)
    stop()
    await vi.advanceTimersByTimeAsync(LINE_INTERVAL_MS * 3)
    expect(written).toEqual([`backup: ${formatProgress(running())}\n`, `backup: ${formatProgress(running({ done: 24_000 }))}\n`])
    expect(written.join('')).not.toContain('\r')
  })

  it('on a terminal: one line redrawn in place, cleared at the end', async () => {
    vi.useFakeTimers()
    const written: string[] = []
    const stop = showProgress('restore', async () => running({ kind: 'restore' }), { isTTY: true, write: (t) => written.push(t) })
    await vi.advanceTimersByTimeAsync(TTY_INTERVAL_MS * 2)
    stop()
    expect(written).toHaveLength(3)
    expect(written[0]).toBe(`\r\x1b[Krestore: ${formatProgress(running({ kind: 'restore' }))}`)
    expect(written[2]).toBe('\r\x1b[K')
  })
})
