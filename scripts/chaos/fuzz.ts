import * as prng from 'lib0/prng'
import { encodeChange, type ChangeRecord } from '../../crdt/index.ts'
import {
  encodeFrame,
  encodeGossip,
  FRAME_ACK,
  FRAME_CHANGES,
  FRAME_DONE,
  FRAME_HELLO,
  FRAME_RESYNC_REQUEST,
  FRAME_SNAPSHOT,
  FRAME_SNAPSHOT_END,
  GOSSIP_ANNOUNCE,
  GOSSIP_CHANGES,
  SYNC_PROTOCOL_VERSION,
} from '../../transport/index.ts'
import type { CallOutcome, SocketApi } from './api.ts'

/**
 * Seeded fuzzing of meshsync's inbound surfaces. The generators are pure functions of the PRNG
 * (the same seed gives the same inputs); the REST runner drives a real daemon over its Unix
 * socket. Protocol inputs (sync frames, gossip messages) are sent by a raw libp2p peer holding
 * the cluster key (test/chaos/fuzz.test.ts).
 */

// ---- byte mutation -------------------------------------------------------------------------

/** A few random edits of `bytes`: bit flips, byte changes, truncation, insertion, duplication. */
export function mutate(gen: prng.PRNG, bytes: Uint8Array): Uint8Array {
  let out = Uint8Array.from(bytes)
  const edits = prng.int32(gen, 1, 4)
  for (let e = 0; e < edits; e++) {
    const at = out.length === 0 ? 0 : prng.int32(gen, 0, out.length - 1)
    switch (prng.int32(gen, 0, 6)) {
      case 0:
        if (out.length > 0) out[at] = (out[at] as number) ^ (1 << prng.int32(gen, 0, 7))
        break
      case 1:
        if (out.length > 0) out[at] = prng.oneOf(gen, [0, 1, 0x7f, 0x80, 0xff, prng.int32(gen, 0, 255)])
        break
      case 2:
        out = out.slice(0, at)
        break
      case 3: {
        const ins = prng.uint8Array(gen, prng.int32(gen, 1, 16))
        out = Uint8Array.from([...out.slice(0, at), ...ins, ...out.slice(at)])
        break
      }
      case 4:
        out = Uint8Array.from([...out.slice(0, at), ...out.slice(at, at + prng.int32(gen, 1, 32)), ...out.slice(at)])
        break
      case 5:
        // A varint that never ends, or claims a huge length.
        out = Uint8Array.from([...out.slice(0, at), 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, ...out.slice(at)])
        break
      default:
        if (out.length > 1) out = out.slice(at)
    }
  }
  return out
}

/** A change record from `origin` that can never apply (its seq leaves a gap), as a mutation base. */
export function baseChange(gen: prng.PRNG, origin: string): ChangeRecord {
  const c: ChangeRecord = {
    origin,
    seq: prng.int32(gen, 1000, 1_000_000),
    ns: prng.oneOf(gen, ['fz', 'items', 'a.b-c_d']),
    id: prng.oneOf(gen, ['x', 'y', 'k'.repeat(prng.int32(gen, 1, 200))]),
    op: prng.bool(gen) ? 'upsert' : 'delete',
    context: { [origin]: prng.int32(gen, 999, 100_000), ffffffffffffffff: prng.int32(gen, 0, 5) },
    fields: prng.bool(gen) ? ['a'] : [],
    texts: prng.bool(gen) ? ['body'] : [],
    update: prng.bool(gen) ? new Uint8Array([0, 0]) : prng.uint8Array(gen, prng.int32(gen, 0, 64)),
    time: prng.int32(gen, 0, 2 ** 31 - 1),
  }
  return c.op === 'delete' ? { ...c, fields: [], texts: [], update: new Uint8Array(0) } : c
}

/** A (mostly) malformed change record: a mutated or random encoding. */
export function fuzzRecord(gen: prng.PRNG, origin: string): Uint8Array {
  const roll = prng.int32(gen, 0, 9)
  if (roll === 0) return prng.uint8Array(gen, prng.int32(gen, 0, 300))
  if (roll === 1) return encodeChange(baseChange(gen, origin))
  return mutate(gen, encodeChange(baseChange(gen, origin)))
}

/**
 * One sync-protocol input, sent on a fresh `/meshsync/sync/1.0.0` stream after (or instead of)
 * a valid HELLO: the frames to write, each already length-prefixed by the caller. `records`
 * says how many inputs it counts for (a CHANGES frame of fuzzed records counts each record).
 */
export function fuzzSyncSession(gen: prng.PRNG, self: { nodeId: string; vv: Record<string, number> }): { frames: Uint8Array[]; inputs: number } {
  const hello = encodeFrame({ type: FRAME_HELLO, version: SYNC_PROTOCOL_VERSION, nodeId: self.nodeId, vv: self.vv })
  const roll = prng.int32(gen, 0, 9)
  if (roll < 3) {
    // The first frame itself: random, a mutated HELLO, or a frame of another type first.
    const first =
      roll === 0
        ? prng.uint8Array(gen, prng.int32(gen, 0, 200))
        : roll === 1
          ? mutate(gen, hello)
          : encodeFrame({ type: FRAME_DONE, vv: { [self.nodeId]: prng.int32(gen, 0, 9) } })
    return { frames: [first], inputs: 1 }
  }
  if (roll < 6) {
    // After a valid HELLO: one mutated frame of any type.
    const kinds = [
      () => encodeFrame({ type: FRAME_CHANGES, records: [fuzzRecord(gen, self.nodeId)] }),
      () => encodeFrame({ type: FRAME_DONE, vv: { [self.nodeId]: prng.int32(gen, 0, 2 ** 31) } }),
      () => encodeFrame({ type: FRAME_ACK, vv: {} }),
      () => encodeFrame({ type: FRAME_SNAPSHOT, records: [prng.uint8Array(gen, prng.int32(gen, 1, 100))] }),
      () => encodeFrame({ type: FRAME_SNAPSHOT_END, vv: { [self.nodeId]: 5 } }),
      () => encodeFrame({ type: FRAME_RESYNC_REQUEST, ns: 'fz' } as Parameters<typeof encodeFrame>[0]),
      () => Uint8Array.from([prng.int32(gen, 0, 255), ...prng.uint8Array(gen, prng.int32(gen, 0, 64))]),
    ]
    return { frames: [hello, mutate(gen, prng.oneOf(gen, kinds)())], inputs: 1 }
  }
  // After a valid HELLO: a CHANGES frame of many fuzzed records (each one an input), then DONE.
  const count = prng.int32(gen, 50, 400)
  const records = Array.from({ length: count }, () => fuzzRecord(gen, self.nodeId))
  return { frames: [hello, encodeFrame({ type: FRAME_CHANGES, records }), encodeFrame({ type: FRAME_DONE, vv: self.vv })], inputs: count }
}

/** One gossip message: random bytes, a mutated CHANGES/ANNOUNCE, or a structurally valid one. */
export function fuzzGossip(gen: prng.PRNG, origin: string): Uint8Array {
  const roll = prng.int32(gen, 0, 9)
  if (roll === 0) return prng.uint8Array(gen, prng.int32(gen, 0, 300))
  if (roll === 1) return mutate(gen, encodeGossip({ type: GOSSIP_ANNOUNCE, dot: { origin, seq: prng.int32(gen, 1, 100) } } as Parameters<typeof encodeGossip>[0]))
  const records = Array.from({ length: prng.int32(gen, 1, 4) }, () => (roll < 5 ? encodeChange(baseChange(gen, origin)) : fuzzRecord(gen, origin)))
  const message = encodeGossip({ type: GOSSIP_CHANGES, records } as Parameters<typeof encodeGossip>[0])
  return roll < 7 ? message : mutate(gen, message)
}

// ---- REST ----------------------------------------------------------------------------------

const NAMES = ['fz', 'items', '', '.', '..', 'A', 'a'.repeat(65), '%2F', '%00', 'é', 'a b', 'x/y', '🙂', 'a'.repeat(300), '-', 'canary2']

function fuzzName(gen: prng.PRNG): string {
  const roll = prng.int32(gen, 0, 5)
  if (roll < 3) return encodeURIComponent(prng.oneOf(gen, NAMES))
  // Raw (not component-encoded): '/', '.', '..' and '%' reach the router as they are.
  if (roll === 3) return encodeURI(prng.oneOf(gen, NAMES))
  return encodeURIComponent(prng.utf16String(gen, prng.int32(gen, 0, 20)))
}

function fuzzJson(gen: prng.PRNG, depth = 0): unknown {
  switch (prng.int32(gen, 0, depth > 3 ? 4 : 7)) {
    case 0:
      return null
    case 1:
      return prng.bool(gen)
    case 2:
      return prng.oneOf(gen, [0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, prng.int32(gen, -1000, 1000)])
    case 3:
      return prng.utf16String(gen, prng.int32(gen, 0, 40))
    case 4:
      return prng.oneOf(gen, ['a', '', 'x'.repeat(5000), '\u0000', '\ud800'])
    case 5:
      return Array.from({ length: prng.int32(gen, 0, 5) }, () => fuzzJson(gen, depth + 1))
    default: {
      const o: Record<string, unknown> = {}
      for (let i = prng.int32(gen, 0, 5); i > 0; i--) o[prng.oneOf(gen, ['a', 'ops', 'op', 'ns', 'id', 'value', 'from', '__proto__', 'constructor', '', 'multiaddr', prng.word(gen)])] = fuzzJson(gen, depth + 1)
      return o
    }
  }
}

function fuzzBody(gen: prng.PRNG): { body: string | Uint8Array | undefined; contentType?: string } {
  const roll = prng.int32(gen, 0, 9)
  if (roll === 0) return { body: undefined }
  if (roll === 1) return { body: prng.uint8Array(gen, prng.int32(gen, 0, 100)) }
  if (roll === 2) return { body: '{"a":' }
  if (roll === 3) return { body: `{"ops":[${Array.from({ length: prng.int32(gen, 0, 3) }, () => JSON.stringify({ op: prng.oneOf(gen, ['put', 'patch', 'delete', 'x']), ns: fuzzName(gen), id: fuzzName(gen), value: fuzzJson(gen) })).join(',')}]}` }
  if (roll === 4) return { body: JSON.stringify({ ops: [[prng.int32(gen, -5, 5), prng.int32(gen, -5, 5), fuzzJson(gen)]] }) }
  if (roll === 5) return { body: '['.repeat(prng.int32(gen, 1, 5000)) }
  if (roll === 6) return { body: JSON.stringify(fuzzJson(gen)), contentType: prng.oneOf(gen, ['text/plain', 'application/json; charset=latin1', 'application/x-www-form-urlencoded']) }
  return { body: JSON.stringify(fuzzJson(gen)) }
}

/** One REST request: method, path (with fuzzed params and query), body. */
export function fuzzRequest(gen: prng.PRNG): { method: string; path: string; body: string | Uint8Array | undefined; contentType?: string } {
  const method = prng.oneOf(gen, ['GET', 'PUT', 'PATCH', 'POST', 'DELETE', 'HEAD', 'OPTIONS'])
  const query = (): string =>
    prng.bool(gen) ? '' : `?${prng.oneOf(gen, ['limit', 'after', 'prefix', 'since', 'ns', 'x'])}=${encodeURIComponent(prng.oneOf(gen, ['-1', '0', '1001', 'now', 'abc', '9'.repeat(30), '', prng.utf16String(gen, 5)]))}`
  const path = prng.oneOf(gen, [
    () => `/v1/ns/${fuzzName(gen)}/entities/${fuzzName(gen)}`,
    () => `/v1/ns/${fuzzName(gen)}/entities${query()}`,
    () => `/v1/ns/${fuzzName(gen)}/entities/${fuzzName(gen)}/text/${fuzzName(gen)}`,
    () => `/v1/ns/${fuzzName(gen)}/entities/${fuzzName(gen)}/resolve`,
    () => `/v1/ns/${fuzzName(gen)}/changes${query()}`,
    () => `/v1/batch`,
    () => `/v1/conflicts${query()}`,
    () => `/v1/status`,
    () => `/v1/peers`,
    () => `/v1/${fuzzName(gen)}`,
    () => `/${'a/'.repeat(prng.int32(gen, 0, 50))}`,
  ])()
  return { method, path, ...fuzzBody(gen) }
}

export interface RestFuzzResult {
  inputs: number
  byStatus: Record<string, number>
  /** 5xx answers (other than 503 retry-later): an unhandled input. */
  serverErrors: string[]
  /** Refused writes after which the node vector moved: an invalid input changed data. */
  changedByRefused: string[]
  /** Requests that got no answer (the daemon died or hung). */
  noAnswer: number
}

/**
 * Sends `count` fuzzed requests, one at a time, to a daemon over its Unix socket. Never touches
 * namespace `canary` (the caller checks it is unchanged). After every refused (non-2xx) request
 * the node vector must be what it was before it.
 */
export async function fuzzRest(api: SocketApi, seed: number, count: number): Promise<RestFuzzResult> {
  const gen = prng.create(seed)
  const result: RestFuzzResult = { inputs: 0, byStatus: {}, serverErrors: [], changedByRefused: [], noAnswer: 0 }
  let vv = JSON.stringify((await api.get<{ versionVector: unknown }>('/v1/status')).versionVector)
  for (let i = 0; i < count; i++) {
    const req = fuzzRequest(gen)
    if (/canary(?!2)/.test(decodeURIComponent(req.path).replace(/[^a-z0-9]/g, ''))) continue
    result.inputs++
    const out: CallOutcome = await api.callRaw(req.method, req.path, req.body, req.contentType)
    if (out.kind !== 'answer') {
      result.noAnswer++
      continue
    }
    result.byStatus[out.status] = (result.byStatus[out.status] ?? 0) + 1
    if (out.status >= 500 && out.status !== 503 && result.serverErrors.length < 50) result.serverErrors.push(`${req.method} ${req.path} -> ${out.status} ${out.text.slice(0, 200)}`)
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS') {
      const now = JSON.stringify((await api.get<{ versionVector: unknown }>('/v1/status')).versionVector)
      if (now !== vv && (out.status < 200 || out.status > 299) && result.changedByRefused.length < 50) {
        result.changedByRefused.push(`${req.method} ${req.path} -> ${out.status}, yet the node vector moved`)
      }
      vv = now
    }
  }
  return result
}
