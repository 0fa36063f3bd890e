import * as prng from 'lib0/prng'
import type { CallOutcome } from './api.ts'
import type { ChaosCluster } from './cluster.ts'
import { sleep } from './cluster.ts'

export type VersionVector = Record<string, number>

/** Namespaces the workload writes. */
export const NS = { insert: 'ins', batch: 'bat', shared: 'shr', text: 'txt' } as const
export const SHARED_IDS = ['s0', 's1', 's2', 's3', 's4', 's5']
export const SHARED_FIELDS = ['f0', 'f1', 'f2', 'f3']
export const TEXT_IDS = ['t0', 't1']
export const TEXT_NAME = 'body'

/**
 * ok: acknowledged (200); fail: refused for certain (an error answer, or nothing sent);
 * unknown: sent without an answer (the node died or the request timed out): may have happened.
 */
export type Outcome = 'ok' | 'fail' | 'unknown'

/** One write the workload attempted, with its node, times and outcome. */
export interface OpRecord {
  readonly seq: number
  readonly node: number
  readonly nodeId: string
  readonly kind: 'insert' | 'patch' | 'put' | 'delete' | 'text' | 'batch'
  readonly ns: string
  /** Entity id (for a batch: the first item's). */
  readonly id: string
  /** insert/patch/put: the fields written (values are unique strings). */
  readonly fields?: Readonly<Record<string, string>>
  /** text: the token inserted at position 0. */
  readonly token?: string
  /** batch: the entities put, atomically. */
  readonly items?: readonly { readonly id: string; readonly value: Readonly<Record<string, string>> }[]
  /** ms since the workload began: invocation and answer. */
  readonly t0: number
  t1?: number
  outcome?: Outcome
  status?: number
  error?: string
  /** The entity version the answer carried (acknowledged writes); batch: one per item. */
  version?: VersionVector
  versions?: VersionVector[]
}

export interface WorkloadStats {
  attempted: number
  acknowledged: number
  failed: number
  unknown: number
  reads: number
  staleReads: number
  byKind: Record<string, { attempted: number; acknowledged: number }>
  /** Why writes were refused or left unknown: error code or status -> count. */
  errors: Record<string, number>
}

export interface WorkloadOptions {
  readonly seed: number
  readonly clientsPerNode?: number
  /** Pause between one client's operations (ms). */
  readonly thinkMs?: number
}

/**
 * Clients per node writing through the node's Unix socket until stopped: unique-key inserts,
 * PATCHes and PUTs of shared fields (so writes on different nodes are concurrent), deletes of
 * shared entities, text splices (a unique token at position 0), and atomic batches of inserts.
 * Every operation is recorded with its node, its times and its outcome.
 */
export class Workload {
  readonly history: OpRecord[] = []
  readonly stats: WorkloadStats = { attempted: 0, acknowledged: 0, failed: 0, unknown: 0, reads: 0, staleReads: 0, byKind: {}, errors: {} }
  readonly staleReadSamples: string[] = []
  readonly #cluster: ChaosCluster
  readonly #options: WorkloadOptions
  readonly #t0: number
  #running = false
  #clients: Promise<void>[] = []
  #counter = 0

  constructor(cluster: ChaosCluster, t0: number, options: WorkloadOptions) {
    this.#cluster = cluster
    this.#t0 = t0
    this.#options = options
  }

  start(): void {
    this.#running = true
    const perNode = this.#options.clientsPerNode ?? 2
    this.#cluster.nodes.forEach((_, node) => {
      for (let c = 0; c < perNode; c++) {
        const gen = prng.create((this.#options.seed * 1000 + node * 10 + c) >>> 0)
        this.#clients.push(this.#client(node, gen))
      }
    })
  }

  async stop(): Promise<void> {
    this.#running = false
    await Promise.all(this.#clients)
  }

  #now(): number {
    return Date.now() - this.#t0
  }

  async #client(node: number, gen: prng.PRNG): Promise<void> {
    const think = this.#options.thinkMs ?? 15
    while (this.#running) {
      const target = this.#cluster.nodes[node]
      if (!target || !target.ready) {
        await sleep(50)
        continue
      }
      await this.#one(node, gen)
      await sleep(prng.int32(gen, 0, think * 2))
    }
  }

  async #one(node: number, gen: prng.PRNG): Promise<void> {
    const n = this.#cluster.nodes[node] as ChaosCluster['nodes'][number]
    const nodeId = n.spec.nodeId
    const u = (): string => `n${node}.${++this.#counter}`
    const roll = prng.int32(gen, 0, 99)
    let rec: OpRecord
    let method: string
    let path: string
    let body: unknown
    if (roll < 40) {
      const id = u()
      rec = { seq: 0, node, nodeId, kind: 'insert', ns: NS.insert, id, fields: { v: id, by: String(node) }, t0: this.#now() }
      method = 'PUT'
      path = `/v1/ns/${NS.insert}/entities/${id}`
      body = rec.fields
    } else if (roll < 65) {
      const id = prng.oneOf(gen, SHARED_IDS)
      const fields: Record<string, string> = {}
      for (const f of SHARED_FIELDS) if (prng.int32(gen, 0, 2) === 0) fields[f] = u()
      if (Object.keys(fields).length === 0) fields[prng.oneOf(gen, SHARED_FIELDS)] = u()
      rec = { seq: 0, node, nodeId, kind: 'patch', ns: NS.shared, id, fields, t0: this.#now() }
      method = 'PATCH'
      path = `/v1/ns/${NS.shared}/entities/${id}`
      body = fields
    } else if (roll < 70) {
      const id = prng.oneOf(gen, SHARED_IDS)
      const fields: Record<string, string> = {}
      for (const f of SHARED_FIELDS) if (prng.bool(gen)) fields[f] = u()
      rec = { seq: 0, node, nodeId, kind: 'put', ns: NS.shared, id, fields, t0: this.#now() }
      method = 'PUT'
      path = `/v1/ns/${NS.shared}/entities/${id}`
      body = fields
    } else if (roll < 75) {
      const id = prng.oneOf(gen, SHARED_IDS)
      rec = { seq: 0, node, nodeId, kind: 'delete', ns: NS.shared, id, t0: this.#now() }
      method = 'DELETE'
      path = `/v1/ns/${NS.shared}/entities/${id}`
    } else if (roll < 88) {
      const id = prng.oneOf(gen, TEXT_IDS)
      const token = `[${u()}]`
      rec = { seq: 0, node, nodeId, kind: 'text', ns: NS.text, id, token, t0: this.#now() }
      method = 'POST'
      path = `/v1/ns/${NS.text}/entities/${id}/text/${TEXT_NAME}`
      body = { ops: [[0, 0, token]] }
    } else {
      const size = prng.int32(gen, 2, 5)
      const items = Array.from({ length: size }, () => {
        const id = u()
        return { id, value: { v: id, by: String(node) } }
      })
      rec = { seq: 0, node, nodeId, kind: 'batch', ns: NS.batch, id: items[0]?.id as string, items, t0: this.#now() }
      method = 'POST'
      path = '/v1/batch'
      body = { ops: items.map((it) => ({ op: 'put', ns: NS.batch, id: it.id, value: it.value })) }
    }
    ;(rec as { seq: number }).seq = this.history.length
    this.history.push(rec)
    const kindStats = (this.stats.byKind[rec.kind] ??= { attempted: 0, acknowledged: 0 })
    this.stats.attempted++
    kindStats.attempted++
    const out = await n.api.call(method, path, body, 30_000)
    rec.t1 = this.#now()
    this.#record(rec, out)
    if (rec.outcome === 'ok') {
      this.stats.acknowledged++
      kindStats.acknowledged++
      if (rec.kind === 'insert' && prng.int32(gen, 0, 9) === 0) await this.#readOwnWrite(node, rec)
    } else {
      if (rec.outcome === 'fail') this.stats.failed++
      else this.stats.unknown++
      const code = /"code":"([A-Z_]+)"/.exec(rec.error ?? '')?.[1] ?? rec.error ?? String(rec.status)
      const key = `${rec.kind} ${rec.outcome} ${code}`
      this.stats.errors[key] = (this.stats.errors[key] ?? 0) + 1
    }
  }

  #record(rec: OpRecord, out: CallOutcome): void {
    if (out.kind === 'refused') {
      rec.outcome = 'fail'
      rec.error = out.error
    } else if (out.kind === 'indeterminate') {
      rec.outcome = 'unknown'
      rec.error = out.error
    } else if (out.status === 200) {
      rec.outcome = 'ok'
      rec.status = 200
      const json = out.json as { version?: VersionVector; results?: { version: VersionVector }[] } | undefined
      if (rec.kind === 'batch') rec.versions = (json?.results ?? []).map((r) => r.version)
      else if (json?.version) rec.version = json.version
    } else {
      // An error answer: nothing of the request was applied (docs/api.md, Errors).
      rec.outcome = 'fail'
      rec.status = out.status
      rec.error = out.text.slice(0, 200)
    }
  }

  /** Read-your-writes on the node that acknowledged: an insert must be visible there at once. */
  async #readOwnWrite(node: number, rec: OpRecord): Promise<void> {
    const n = this.#cluster.nodes[node] as ChaosCluster['nodes'][number]
    const out = await n.api.call('GET', `/v1/ns/${rec.ns}/entities/${rec.id}`, undefined, 30_000)
    if (out.kind !== 'answer') return
    this.stats.reads++
    const value = (out.json as { value?: Record<string, string> } | undefined)?.value
    if (out.status !== 200 || value?.v !== rec.fields?.v) {
      this.stats.staleReads++
      if (this.staleReadSamples.length < 20) this.staleReadSamples.push(`${rec.ns}/${rec.id} on node ${node}: ${out.status} ${out.text.slice(0, 120)}`)
    }
  }
}
