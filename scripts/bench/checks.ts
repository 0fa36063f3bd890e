import type { RawLevel } from './level-baseline.ts'
import type { SocketClient } from './socket-client.ts'

/** A benchmark's result did not check out: the run fails, however fast it was. */
export class CheckFailed extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CheckFailed'
  }
}

export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new CheckFailed(message)
}

/** What the daemon must hold after a benchmark's writes. */
export interface DaemonExpectation {
  readonly nodeId: string
  readonly ns: string
  /** Live entities of `ns`. */
  readonly count: number
  /** Changes this node made (its counter in the node version vector). */
  readonly changes: number
  /** Entities to read back one by one, with the record each must hold. */
  readonly samples: readonly (readonly [id: string, value: { v: string }])[]
}

/** Reads back counts (GET /v1/status) and sampled records (GET /v1/ns/:ns/entities/:id). */
export async function verifyDaemon(client: SocketClient, expected: DaemonExpectation): Promise<void> {
  const status = (await client.expect('GET', '/v1/status', undefined)) as { namespaces?: Record<string, number>; versionVector?: Record<string, number> }
  const count = status.namespaces?.[expected.ns]
  check(count === expected.count, `daemon holds ${count} entities in ${expected.ns}, expected ${expected.count}`)
  const counter = status.versionVector?.[expected.nodeId]
  check(counter === expected.changes, `daemon made ${counter} changes, expected ${expected.changes}`)
  for (const [id, value] of expected.samples) {
    const entity = (await client.expect('GET', `/v1/ns/${expected.ns}/entities/${id}`, undefined)) as { value?: Record<string, unknown> }
    check(sameRecord(entity.value, value), `${expected.ns}/${id} reads back ${JSON.stringify(entity.value)}, expected ${JSON.stringify(value)}`)
  }
}

/** Reads back the key count under `prefix` and sampled values of a raw classic-level baseline. */
export async function verifyLevel(raw: RawLevel, prefix: string, count: number, samples: readonly (readonly [key: string, value: string])[]): Promise<void> {
  const have = await raw.countPrefix(prefix)
  check(have === count, `classic-level holds ${have} keys under ${prefix}, expected ${count}`)
  for (const [key, value] of samples) {
    const got = await raw.db.get(key)
    check(got === value, `classic-level ${key} reads back ${got}, expected ${value}`)
  }
}

/** True when `actual` is exactly the one-field record `expected`. */
export function sameRecord(actual: unknown, expected: { v: string }): boolean {
  if (typeof actual !== 'object' || actual === null) return false
  const keys = Object.keys(actual)
  return keys.length === 1 && keys[0] === 'v' && (actual as { v: unknown }).v === expected.v
}
