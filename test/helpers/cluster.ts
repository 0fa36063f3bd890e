import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import type { ApiResponse, DaemonHandle } from './daemon-process.ts'
import { waitFor } from './wait-for.ts'

/** Helpers for multi-daemon (cluster) tests over the local API. */

export type Value = Record<string, unknown>
export type VersionVector = Record<string, number>

/** An entity as the API returns it. */
export interface Entity {
  readonly ns: string
  readonly id: string
  readonly value: Value
  readonly version: VersionVector
  readonly updatedAt: string
  readonly deleted?: boolean
}

/** `GET /v1/status`. */
export interface Status {
  readonly nodeId: string
  readonly peerId: string
  readonly listen: readonly string[]
  readonly peers: number
  readonly gossip: { readonly topic: string; readonly signed: boolean; readonly peers: number }
  readonly versionVector: VersionVector
  readonly entities: number
  readonly namespaces: Record<string, number>
}

/** One row of `GET /v1/peers` (`peerId` null: a failing bootstrap address that names no peer). */
export interface PeerRow {
  readonly peerId: string | null
  readonly nodeId: string | null
  readonly addrs: readonly string[]
  readonly connected: boolean
  readonly lastSyncAt: string | null
  readonly behind: number | null
  readonly failing: { readonly addr: string; readonly error: string; readonly message: string; readonly since: string; readonly lastAt: string; readonly attempts: number } | null
}

/** Which listener of the API a request goes through. */
export type Via = 'tcp' | 'sock'

/** The error code of an error answer. */
export function codeOf(res: ApiResponse): string | undefined {
  return (res.json as { error?: { code?: string } } | undefined)?.error?.code
}

/** The body of a 200 answer; anything else throws with the status and body. */
export function ok<T>(res: ApiResponse<T>, what = 'request'): T {
  if (res.status !== 200) throw new Error(`${what}: expected 200, got ${res.status}: ${res.text}`)
  return res.json
}

/** A TCP port that was free a moment ago (the chaos launcher's). */
export { freePort } from '../../scripts/chaos/cluster.ts'

/** `meshsync start` flags that join `first`'s cluster: its cluster key, and it as bootstrap peer. */
export function joinArgs(first: DaemonHandle): string[] {
  const addr = first.info.listen[0]
  if (!addr) throw new Error(`daemon ${first.info.peerId} listens nowhere`)
  return ['--cluster-key', join(first.dataDir, 'cluster.key'), '--bootstrap', addr]
}

/** `GET /v1/status` (over the socket unless told otherwise). */
export async function statusOf(d: DaemonHandle, via: Via = 'sock'): Promise<Status> {
  return ok(await d[via]<Status>('GET', '/v1/status'), `status of ${d.info.nodeId}`)
}

/** `GET /v1/peers`. */
export async function peersOf(d: DaemonHandle, via: Via = 'sock'): Promise<PeerRow[]> {
  return ok(await d[via]<PeerRow[]>('GET', '/v1/peers'), `peers of ${d.info.nodeId}`)
}

const entityPath = (ns: string, id: string): string => `/v1/ns/${encodeURIComponent(ns)}/entities/${encodeURIComponent(id)}`

/** PUT an entity; resolves once acknowledged (200), throws otherwise. */
export async function put(d: DaemonHandle, ns: string, id: string, value: Value, via: Via = 'sock'): Promise<Entity> {
  return ok(await d[via]<Entity>('PUT', entityPath(ns, id), value), `PUT ${ns}/${id} on ${d.info.nodeId}`)
}

/** PATCH an entity; resolves once acknowledged (200), throws otherwise. */
export async function patch(d: DaemonHandle, ns: string, id: string, fields: Value, via: Via = 'sock'): Promise<Entity> {
  return ok(await d[via]<Entity>('PATCH', entityPath(ns, id), fields), `PATCH ${ns}/${id} on ${d.info.nodeId}`)
}

/** DELETE an entity; resolves once acknowledged (200), throws otherwise. */
export async function del(d: DaemonHandle, ns: string, id: string, via: Via = 'sock'): Promise<void> {
  ok(await d[via]('DELETE', entityPath(ns, id)), `DELETE ${ns}/${id} on ${d.info.nodeId}`)
}

/** The entity's value, or null when it does not exist (404 ENTITY_NOT_FOUND). */
export async function valueOf(d: DaemonHandle, ns: string, id: string, via: Via = 'sock'): Promise<Value | null> {
  const res = await d[via]<Entity>('GET', entityPath(ns, id))
  if (res.status === 404 && codeOf(res) === 'ENTITY_NOT_FOUND') return null
  return ok(res, `GET ${ns}/${id} on ${d.info.nodeId}`).value
}

/**
 * What every node must hold: `ns/id` → value, or null for "absent or deleted". Keys are
 * `${ns}/${id}` (ids here never contain `/`).
 */
export type Expected = ReadonlyMap<string, Value | null>

/**
 * Throws (with what differs) unless every daemon has every expected entity with exactly the
 * expected value, and all of them report the same `/v1/status` versionVector; returns that vector.
 */
export async function assertConverged(daemons: readonly DaemonHandle[], expected: Expected): Promise<VersionVector> {
  const statuses = await Promise.all(daemons.map((d) => statusOf(d)))
  const first = statuses[0] as Status
  for (const s of statuses) {
    if (!isDeepStrictEqual(s.versionVector, first.versionVector)) {
      throw new Error(`version vectors differ: ${statuses.map((x) => `${x.nodeId}=${JSON.stringify(x.versionVector)}`).join(' ')}`)
    }
  }
  for (const d of daemons) {
    for (const [key, want] of expected) {
      const [ns, id] = key.split('/') as [string, string]
      const have = await valueOf(d, ns, id)
      if (!isDeepStrictEqual(have, want)) throw new Error(`${d.info.nodeId} has ${key}=${JSON.stringify(have)}, expected ${JSON.stringify(want)}`)
    }
  }
  return first.versionVector
}

/** Polls until {@link assertConverged} holds (no sleeps); resolves with the common version vector. */
export function waitConverged(daemons: readonly DaemonHandle[], expected: Expected, timeout = 30_000): Promise<VersionVector> {
  return waitFor(() => assertConverged(daemons, expected), { timeout, interval: 100, message: `${daemons.length} daemons to converge` })
}

/** Polls until `d` lists `peerId` as connected and synced at least once; resolves with that row. */
export function waitPeerSynced(d: DaemonHandle, peerId: string, timeout = 20_000): Promise<PeerRow> {
  return waitFor(
    async () => {
      const row = (await peersOf(d)).find((p) => p.peerId === peerId)
      return row?.connected && row.lastSyncAt !== null ? row : undefined
    },
    { timeout, interval: 100, message: `${d.info.nodeId} connected to and synced with ${peerId}` },
  )
}
