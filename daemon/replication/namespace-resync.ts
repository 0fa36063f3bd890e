import type { Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import { MeshsyncError, type EntitySnapshot } from '../../crdt/index.ts'
import { requestNamespace, serveNamespace, type ReplicationTransport } from '../../transport/index.ts'
import type { EntityStore } from '../store/entity-store.ts'
import type { ReplicationRun } from './replication-run.ts'
import { encodeStoredEntity } from './sync-source.ts'

/** Most bytes of entity state one resync holds in memory before it replaces the namespace. */
const MAX_RESYNC_BYTES = 512 * 1024 * 1024

/** A full refresh that could not run. */
export class ResyncError extends MeshsyncError {
  constructor(code: 'NO_PEER' | 'RESYNC_TOO_LARGE', message: string) {
    super(code, message)
    this.name = 'ResyncError'
  }
}

export interface NamespaceResyncComponents {
  readonly store: EntityStore
  readonly transport: Pick<ReplicationTransport, 'connectedPeers' | 'openResyncStream'>
  readonly logger: Logger
  readonly run: ReplicationRun
  readonly strikes: { strike(peerId: string, surface: string, reason: string): void }
  /** Where a failed stream is counted. */
  readonly sessions: { sessionFailed(peerId: string, error: unknown): void }
}

/** Full refresh of a namespace from a peer (the read-only full pattern), both sides of it. */
export class NamespaceResync {
  readonly #store: EntityStore
  readonly #transport: NamespaceResyncComponents['transport']
  readonly #log: Logger
  readonly #run: ReplicationRun
  readonly #strikes: NamespaceResyncComponents['strikes']
  readonly #sessions: NamespaceResyncComponents['sessions']
  readonly #streamTimeout: number

  constructor(components: NamespaceResyncComponents, options: { streamTimeoutMs?: number | undefined } = {}) {
    this.#store = components.store
    this.#transport = components.transport
    this.#log = components.logger
    this.#run = components.run
    this.#strikes = components.strikes
    this.#sessions = components.sessions
    this.#streamTimeout = options.streamTimeoutMs ?? 30_000
  }

  /**
   * Full refresh of a namespace from a peer (the read-only full pattern): fetches every entity of
   * `ns` from `from` (or the first connected peer), then replaces the local namespace with it in
   * place. Everything is fetched before anything local is touched, so a failed transfer changes
   * nothing. Local changes of `ns` that the peer does not have are dropped from this node's
   * entities (they stay in its log and on any peer that has them).
   */
  async resyncNamespace(ns: string, options: { from?: string; signal?: AbortSignal } = {}): Promise<{ from: string; entities: number; removed: number }> {
    const from = options.from ?? this.#transport.connectedPeers()[0]
    if (from === undefined) throw new ResyncError('NO_PEER', 'no connected peer to resync from')
    if (!this.#transport.connectedPeers().includes(from)) throw new ResyncError('NO_PEER', `peer ${from} is not connected`)
    const fetched: EntitySnapshot[] = []
    let bytes = 0
    const stream = await this.#transport.openResyncStream(from, options.signal ? { signal: options.signal } : {})
    const result = await requestNamespace(
      stream,
      ns,
      async (batch) => {
        for (const e of batch) bytes += e.state.length
        if (bytes > MAX_RESYNC_BYTES) throw new ResyncError('RESYNC_TOO_LARGE', `namespace ${ns} is larger than ${MAX_RESYNC_BYTES} bytes of state`)
        fetched.push(...batch)
      },
      { signal: AbortSignal.any([this.#run.signal, ...(options.signal ? [options.signal] : [])]), idleTimeoutMs: this.#streamTimeout },
    )
    if (result.invalid > 0) this.#strikes.strike(from, 'resync', `${result.invalid} malformed entity snapshots`)
    const removed = await this.#store.wipeNamespace(ns)
    for (let i = 0; i < fetched.length; i += 500) await this.#store.applySnapshot(fetched.slice(i, i + 500))
    this.#log.info({ ns, from, entities: fetched.length, removed }, 'namespace reloaded from peer')
    return { from, entities: fetched.length, removed }
  }

  /** Serves a peer's full refresh (its handler of inbound resync streams). */
  async serve(stream: Stream, peerId: string): Promise<void> {
    const store = this.#store
    try {
      await serveNamespace(
        stream,
        async function* (ns) {
          for await (const e of store.entities({ ns })) {
            yield encodeStoredEntity(e)
          }
        },
        { signal: this.#run.signal, idleTimeoutMs: this.#streamTimeout },
      )
    } catch (error) {
      this.#sessions.sessionFailed(peerId, error)
    }
  }
}
