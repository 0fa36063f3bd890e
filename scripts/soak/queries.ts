import * as prng from 'lib0/prng'
import type { ChaosCluster } from '../chaos/cluster.ts'
import { sleep } from '../chaos/cluster.ts'
import { indexConfig } from '../chaos/index-check.ts'
import { NS, SHARED_FIELDS } from '../chaos/workload.ts'

/**
 * The config every soak daemon gets (docs/queries.md): the chaos harness's indexes (the inserts by
 * writer, the shared entities by two fields; checked against a full scan at the end), and the
 * batch items by writer, so that no query of the load scans a namespace that grows all run.
 */
export function soakConfig(): object {
  const chaos = indexConfig() as { namespaces: Record<string, object> }
  return { namespaces: { ...chaos.namespaces, [NS.batch]: { indexes: { byWriter: ['by'] } } } }
}

export interface QueryStats {
  answered: number
  /** Answers holding an entity the query's filter does not match. */
  wrong: number
  /** 5xx answers (a node that is up must answer a valid query). */
  serverErrors: number
  /** No answer: the node was down, paused or cut off from its socket. */
  notAnswered: number
  /** Other error answers, by code. */
  refused: Record<string, number>
  /** The first wrong or failed answers. */
  samples: string[]
}

interface Entity {
  readonly id: string
  readonly value: Record<string, unknown>
}

/**
 * One client that queries a node picked at random, over and over: a page of one writer's inserts
 * through the index, a count of a writer's batch items, and a scan of the shared entities with a
 * field present. Every entity of an answer must match its query's filter.
 */
export class QueryLoad {
  readonly stats: QueryStats = { answered: 0, wrong: 0, serverErrors: 0, notAnswered: 0, refused: {}, samples: [] }
  readonly #cluster: ChaosCluster
  readonly #gen: prng.PRNG
  readonly #thinkMs: number
  #running = false
  #loop: Promise<void> | undefined

  constructor(cluster: ChaosCluster, seed: number, thinkMs: number) {
    this.#cluster = cluster
    this.#gen = prng.create((seed * 31 + 7) >>> 0)
    this.#thinkMs = thinkMs
  }

  start(): void {
    this.#running = true
    this.#loop = (async () => {
      while (this.#running) {
        await this.#one()
        await sleep(prng.int32(this.#gen, 0, this.#thinkMs * 2))
      }
    })()
  }

  async stop(): Promise<void> {
    this.#running = false
    await this.#loop
  }

  async #one(): Promise<void> {
    const nodes = this.#cluster.nodes
    const i = prng.uint32(this.#gen, 0, nodes.length - 1)
    const n = nodes[i]
    if (!n?.ready || n.paused) return
    const writer = String(prng.uint32(this.#gen, 0, nodes.length - 1))
    const field = prng.oneOf(this.#gen, SHARED_FIELDS)
    const roll = prng.uint32(this.#gen, 0, 2)
    const [ns, body, matches]: [string, object, (e: Entity) => boolean] =
      roll === 0
        ? [NS.insert, { where: { by: writer }, limit: 20 }, (e) => e.value.by === writer]
        : roll === 1
          ? [NS.batch, { where: { by: writer }, count: true }, () => true]
          : [NS.shared, { where: { [field]: { $exists: true } }, limit: 10 }, (e) => Object.hasOwn(e.value, field)]
    const out = await n.api.call('POST', `/v1/ns/${ns}/query`, body, 30_000)
    const note = (s: string): void => {
      if (this.stats.samples.length < 10) this.stats.samples.push(`node ${i} ${ns} ${JSON.stringify(body)}: ${s}`)
    }
    if (out.kind !== 'answer') {
      this.stats.notAnswered++
      return
    }
    if (out.status === 200) {
      this.stats.answered++
      const json = out.json as { items?: Entity[]; count?: number }
      const bad = (json.items ?? []).filter((e) => !matches(e))
      if (bad.length > 0 || (roll === 1 ? typeof json.count !== 'number' : !Array.isArray(json.items))) {
        this.stats.wrong++
        note(`answer does not match: ${out.text.slice(0, 200)}`)
      }
      return
    }
    if (out.status >= 500) {
      // A daemon stopping (killed between the check above and the call) says so: not an error.
      const code = (out.json as { error?: { code?: string } } | undefined)?.error?.code
      if (code === 'SHUTTING_DOWN' || code === 'STORAGE_CLOSED') {
        this.stats.notAnswered++
        return
      }
      this.stats.serverErrors++
      note(`${out.status} ${out.text.slice(0, 200)}`)
      return
    }
    const code = (out.json as { error?: { code?: string } } | undefined)?.error?.code ?? String(out.status)
    this.stats.refused[code] = (this.stats.refused[code] ?? 0) + 1
    note(`${out.status} ${out.text.slice(0, 200)}`)
  }
}
