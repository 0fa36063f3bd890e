/** How long and how often {@link waitFor} polls. */
export interface WaitForOptions {
  /** Give up after this many milliseconds (default 10 s). */
  readonly timeout?: number
  /** Poll every this many milliseconds (default 25 ms). */
  readonly interval?: number
  /** Says what was awaited, for the timeout error. */
  readonly message?: string
}

/**
 * Polls `cond` until it returns a truthy value and resolves with that value. A throwing `cond`
 * counts as "not yet" (the last error is reported on timeout), except an error thrown through
 * {@link abortWait}, which ends the wait at once.
 */
export async function waitFor<T>(cond: () => T | Promise<T>, options: WaitForOptions = {}): Promise<NonNullable<T>> {
  const { timeout = 10_000, interval = 25, message = 'condition' } = options
  const deadline = Date.now() + timeout
  let lastError: unknown
  for (;;) {
    try {
      const value = await cond()
      if (value) return value as NonNullable<T>
    } catch (error) {
      if (error instanceof WaitAborted) throw error.cause
      lastError = error
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `; last error: ${lastError.message}` : ''
      throw new Error(`waitFor: timed out after ${timeout} ms waiting for ${message}${why}`, { cause: lastError })
    }
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
}

class WaitAborted extends Error {}

/** Thrown from a {@link waitFor} condition, stops the wait with `error` (no more polling). */
export function abortWait(error: unknown): never {
  throw new WaitAborted('wait aborted', { cause: error })
}
