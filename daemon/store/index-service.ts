/**
 * The store's secondary indexes as its users see them (docs/queries.md): creating, listing,
 * dropping and verifying indexes, the background build of new ones, and queries. The catalog and
 * every entry are written by the committer (index-jobs.ts, group-batch.ts).
 */
import type { Logger } from 'pino'
import { assertNamespace } from '../../crdt/index.ts'
import { IndexError, UnavailableError } from '../errors.ts'
import { parseQuery } from '../query/language.ts'
import type { IndexField } from '../query/planner.ts'
import type { KvStore } from '../storage/kv-store.ts'
import type { Committer } from './committer.ts'
import { decodeMeta } from './entity-meta.ts'
import { indexEntryKey, indexesOf, parseIndexDefinition, type NamedIndex } from './indexes.ts'
import type { IndexAction } from './index-jobs.ts'
import { entityMetaRange, indexPrefix, parseEntityMetaKey } from './keys.ts'
import { own } from './meta-records.ts'
import { runQuery, type QueryAnswer } from './query-run.ts'

/** An index as the API shows it. */
export interface IndexView {
  readonly ns: string
  readonly name: string
  readonly fields: readonly IndexField[]
  readonly source: 'config' | 'api'
  readonly state: 'building' | 'ready'
  /** Entities indexed so far (complete: every live entity of the namespace). */
  readonly built: number
  /** Live entities of the namespace now. */
  readonly total: number
}

/** What `verify` found: entries missing from the index, and entries it should not hold. */
export interface IndexVerifyResult {
  readonly ns: string
  readonly name: string
  readonly state: 'building' | 'ready'
  readonly ok: boolean
  readonly entries: number
  readonly expected: number
  /** Ids (at most 20) whose entry is missing or wrong. */
  readonly missing: string[]
  /** Index keys' ids (at most 20) no live entity accounts for. */
  readonly extra: string[]
}

export class IndexService {
  readonly #kv: KvStore
  readonly #committer: Committer
  readonly #log: Logger
  readonly #maxScan: number
  #building: Promise<void> | undefined

  constructor(kv: KvStore, committer: Committer, log: Logger, maxScan: number) {
    this.#kv = kv
    this.#committer = committer
    this.#log = log
    this.#maxScan = maxScan
  }

  /** Makes the catalog hold the config's indexes, then resumes any build left unfinished. */
  async declare(declared: Readonly<Record<string, Readonly<Record<string, readonly IndexField[]>>>>): Promise<void> {
    const checked: Record<string, Record<string, IndexField[]>> = {}
    for (const [ns, forNs] of Object.entries(declared)) {
      assertNamespace(ns)
      checked[ns] = {}
      for (const [name, fields] of Object.entries(forNs)) checked[ns][name] = parseIndexDefinition(name, fields)
    }
    await this.#job({ op: 'declare', declared: checked })
    this.#startBuilds()
  }

  async create(ns: string, name: string, fields: unknown): Promise<{ index: IndexView; created: boolean }> {
    assertNamespace(ns)
    const parsed = parseIndexDefinition(name, fields)
    const outcome = await this.#job({ op: 'create', ns, name, fields: parsed })
    this.#startBuilds()
    return { index: this.get(ns, name), created: outcome.created === true }
  }

  async drop(ns: string, name: string): Promise<void> {
    assertNamespace(ns)
    await this.#job({ op: 'drop', ns, name })
  }

  get(ns: string, name: string): IndexView {
    assertNamespace(ns)
    const index = indexesOf(this.#committer.indexes, ns).find((i) => i.name === name)
    if (!index) throw new IndexError('INDEX_NOT_FOUND', `no index ${name} in namespace ${ns}`)
    return this.#view(ns, index)
  }

  /** Every index, of one namespace or all, in name order. */
  list(ns?: string): IndexView[] {
    if (ns !== undefined) assertNamespace(ns)
    const namespaces = ns !== undefined ? [ns] : Object.keys(this.#committer.indexes).sort()
    return namespaces.flatMap((n) => indexesOf(this.#committer.indexes, n).sort((a, b) => (a.name < b.name ? -1 : 1)).map((i) => this.#view(n, i)))
  }

  /** Resolves once no index is building (or the store is closing). */
  async whenBuilt(): Promise<void> {
    while (this.#building) await this.#building
  }

  /** Runs a query body (INVALID_QUERY, QUERY_NEEDS_INDEX). */
  async query(ns: string, body: unknown): Promise<QueryAnswer> {
    assertNamespace(ns)
    const query = parseQuery(body)
    const indexes = indexesOf(this.#committer.indexes, ns).filter((i) => i.state === 'ready')
    await this.#kv.whenOpen?.()
    const snapshot = this.#kv.snapshot()
    try {
      return await runQuery(snapshot, ns, query, { indexes, maxScan: this.#maxScan, liveCount: own(this.#committer.counts, ns) ?? 0 })
    } finally {
      await snapshot.close()
    }
  }

  /** Compares an index with a full scan of its namespace, on one snapshot. */
  async verify(ns: string, name: string): Promise<IndexVerifyResult> {
    const view = this.get(ns, name)
    const index: NamedIndex = { name, fields: view.fields, source: view.source, state: view.state, built: view.built }
    await this.#kv.whenOpen?.()
    const snapshot = this.#kv.snapshot()
    try {
      const expected = new Map<string, string>()
      for await (const [key, value] of snapshot.iterate(entityMetaRange(ns))) {
        const { id } = parseEntityMetaKey(key)
        const entry = indexEntryKey(ns, index, id, decodeMeta(value))
        if (entry !== undefined) expected.set(entry, id)
      }
      const prefix = indexPrefix(ns, name)
      const extra: string[] = []
      const decoder = new TextDecoder()
      let entries = 0
      const seen = new Set<string>()
      for await (const [key, value] of snapshot.iterate({ gte: prefix, lt: prefix + '\uffff' })) {
        entries++
        const id = decoder.decode(value)
        if (expected.get(key) === id) seen.add(key)
        else if (extra.length < 20) extra.push(id)
      }
      const missing: string[] = []
      for (const [key, id] of expected) if (!seen.has(key) && missing.length < 20) missing.push(id)
      // A building index holds entries for the entities its build has passed and those written since.
      const ok = view.state === 'ready' ? extra.length === 0 && missing.length === 0 && entries === expected.size : extra.length === 0
      return { ns, name, state: view.state, ok, entries, expected: expected.size, missing: view.state === 'ready' ? missing : [], extra }
    } finally {
      await snapshot.close()
    }
  }

  #view(ns: string, index: NamedIndex): IndexView {
    const total = own(this.#committer.counts, ns) ?? 0
    // A complete index holds every live entity; a building one, those its build has passed so far.
    return { ns, name: index.name, fields: index.fields, source: index.source, state: index.state, built: index.state === 'ready' ? total : Math.min(index.built, total), total }
  }

  async #job(action: IndexAction): Promise<{ created?: boolean }> {
    const result = await this.#committer.enqueue({ kind: 'index', action })
    return result.index ?? {}
  }

  /** Builds every building index, a step at a time between other writes, until none is left. */
  #startBuilds(): void {
    if (this.#building) return
    const building = this.#buildAll().finally(() => {
      if (this.#building === building) this.#building = undefined
    })
    this.#building = building
  }

  async #buildAll(): Promise<void> {
    try {
      for (;;) {
        const next = Object.entries(this.#committer.indexes)
          .flatMap(([ns, forNs]) => Object.entries(forNs).map(([name, index]) => ({ ns, name, index })))
          .find((i) => i.index.state === 'building')
        if (!next || !this.#committer.isOpen) return
        await this.#job({ op: 'build', ns: next.ns, name: next.name })
      }
    } catch (error) {
      // Closing, or a failed write: the build resumes from its last step on the next open.
      if (!(error instanceof UnavailableError)) this.#log.warn({ err: error }, 'an index build stopped; it resumes on the next start')
    }
  }
}
