import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { CheckFailed } from './checks.ts'

interface Pending {
  readonly sentAt: number
  readonly seenBy: Set<number>
  firstAt: number
  lastAt: number
}

/** Per message, in key order: ms from send until the first receiver saw it, and until the last did. */
export interface Latencies {
  readonly first: number[]
  readonly all: number[]
}

/**
 * Latency from "sent" until "seen by every receiver" of messages keyed by a string, with one
 * clock (this process's performance.now()) for both ends.
 */
export class AllReceiversTracker {
  readonly #receivers: number
  readonly #pending = new Map<string, Pending>()
  readonly #problems: string[] = []

  constructor(receivers: number) {
    this.#receivers = receivers
  }

  /** Records that `key` was sent at `sentAt`. */
  sent(key: string, sentAt: number): void {
    this.#pending.set(key, { sentAt, seenBy: new Set(), firstAt: Number.POSITIVE_INFINITY, lastAt: 0 })
  }

  /** Records that receiver `receiver` saw `key` at `at`; keys not sent (warm-up leftovers, other writers) are ignored. */
  seen(key: string, receiver: number, at: number): void {
    const p = this.#pending.get(key)
    if (!p || p.seenBy.has(receiver)) return
    p.seenBy.add(receiver)
    if (at < p.firstAt) p.firstAt = at
    if (at > p.lastAt) p.lastAt = at
  }

  /** A check failed on the receiving side (wrong payload): reported by {@link collect}. */
  problem(message: string): void {
    if (this.#problems.length < 10) this.#problems.push(message)
  }

  /**
   * Waits (up to `timeoutMs`) until every one of `keys` was seen by every receiver and returns
   * their latencies in ms, in key order; a key missing anywhere after the timeout fails the check.
   */
  async collect(keys: readonly string[], timeoutMs: number): Promise<Latencies> {
    const deadline = performance.now() + timeoutMs
    const complete = (k: string): boolean => (this.#pending.get(k)?.seenBy.size ?? 0) >= this.#receivers
    while (!keys.every(complete)) {
      if (this.#problems.length > 0) throw new CheckFailed(`failed while measuring: ${this.#problems.join('; ')}`)
      if (performance.now() > deadline) {
        const missing = keys.filter((k) => !complete(k))
        const detail = missing.slice(0, 5).map((k) => `${k} (seen by ${this.#pending.get(k)?.seenBy.size ?? 0})`)
        throw new CheckFailed(`${missing.length} of ${keys.length} messages not seen by all ${this.#receivers} receivers within ${timeoutMs} ms: ${detail.join(', ')}`)
      }
      await sleep(20)
    }
    if (this.#problems.length > 0) throw new CheckFailed(`failed while measuring: ${this.#problems.join('; ')}`)
    const pending = keys.map((k) => this.#pending.get(k) as Pending)
    for (const k of keys) this.#pending.delete(k)
    return { first: pending.map((p) => p.firstAt - p.sentAt), all: pending.map((p) => p.lastAt - p.sentAt) }
  }
}

/**
 * Calls `fn(i)` for i = 0..count-1 at a fixed rate (open loop: the schedule never waits for
 * earlier calls to finish), `fn` being synchronous up to the send.
 */
export async function paced(count: number, perSecond: number, fn: (i: number) => void): Promise<void> {
  const period = 1000 / perSecond
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    const wait = start + i * period - performance.now()
    if (wait > 0.5) await sleep(wait)
    fn(i)
  }
}
