import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { OverlayStats } from '../transport/index.ts'
import type { Replicator } from './replication/replicator.ts'
import type { BatchTiming, CommittedChange, EntityStore } from './store/entity-store.ts'

/** What the metrics read from. */
export interface MetricsSources {
  readonly store: EntityStore
  /** The LevelDB directory (its files are summed for the size gauge). */
  readonly dbDir: string
}

/**
 * How often the event-loop delay is sampled, by our p99 gauge and by prom-client's lag metrics
 * alike: a stall longer than this is always seen, a shorter one with a probability of its length
 * over this. Their defaults (20 and 10 ms) woke an idle daemon 150 times a second: 13 ms of CPU
 * a second on a 2-vCPU VM, 8 ms at this resolution (3 idle daemons, 22 wake-ups a second each).
 */
const LOOP_DELAY_RESOLUTION_MS = 100

/**
 * The daemon's Prometheus metrics, on a registry of its own (so several daemons in one process,
 * as in tests, never share counters). Counters move with events; gauges are read at scrape time.
 */
export class DaemonMetrics {
  readonly registry = new Registry()
  readonly #sources: MetricsSources
  readonly #loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS })
  readonly #onCommit: (changes: readonly CommittedChange[]) => void
  readonly #onDurable: (timing: BatchTiming) => void

  constructor(sources: MetricsSources) {
    this.#sources = sources
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'meshsync_process_', eventLoopMonitoringPrecision: LOOP_DELAY_RESOLUTION_MS })
    this.#loopDelay.enable()

    const changes = new Counter({
      name: 'meshsync_changes_committed_total',
      help: 'Change records committed to the store, by where they came from.',
      labelNames: ['source'] as const,
      registers,
    })
    const commits = new Counter({ name: 'meshsync_commits_total', help: 'Group commits (fsynced LevelDB batches).', registers })
    this.#onCommit = (committed) => {
      commits.inc()
      let local = 0
      for (const c of committed) if (!c.remote) local++
      if (local > 0) changes.inc({ source: 'local' }, local)
      if (committed.length > local) changes.inc({ source: 'remote' }, committed.length - local)
    }
    sources.store.on('commit', this.#onCommit)
    const commitSeconds = new Histogram({
      name: 'meshsync_commit_duration_seconds',
      help: "Time to write and fsync one group commit's LevelDB batch (what every acknowledged write waits on).",
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    })
    this.#onDurable = (timing) => commitSeconds.observe(timing.seconds)
    sources.store.on('durable', this.#onDurable)

    const { store, dbDir } = sources
    new Gauge({
      name: 'meshsync_entities',
      help: 'Live (not deleted) entities, by namespace.',
      labelNames: ['ns'] as const,
      registers,
      collect() {
        this.reset()
        for (const [ns, n] of Object.entries(store.entityCounts)) this.set({ ns }, n)
      },
    })
    new Gauge({
      name: 'meshsync_index_entities_built',
      help: 'Entities a secondary index holds entries for so far, by namespace and index (docs/queries.md); with meshsync_index_ready.',
      labelNames: ['ns', 'index'] as const,
      registers,
      collect() {
        this.reset()
        for (const i of store.indexes.list()) this.set({ ns: i.ns, index: i.name }, i.built)
      },
    })
    new Gauge({
      name: 'meshsync_index_ready',
      help: 'Whether a secondary index is complete and serves queries (1) or is still building (0), by namespace and index.',
      labelNames: ['ns', 'index'] as const,
      registers,
      collect() {
        this.reset()
        for (const i of store.indexes.list()) this.set({ ns: i.ns, index: i.name }, i.state === 'ready' ? 1 : 0)
      },
    })
    new Gauge({
      name: 'meshsync_live_query_subscribers',
      help: 'Open live queries (POST /v1/ns/:ns/query with Accept: text/event-stream), by namespace (docs/queries.md).',
      labelNames: ['ns'] as const,
      registers,
      collect() {
        this.reset()
        for (const [ns, n] of store.live.subscribers()) this.set({ ns }, n)
      },
    })
    new Counter({
      name: 'meshsync_live_query_dropped_total',
      help: 'Live query streams the node closed because their subscriber read too slowly (query.liveBufferBytes).',
      registers,
      collect() {
        this.reset()
        this.inc(store.live.dropped)
      },
    })
    new Gauge({
      name: 'meshsync_conflicts',
      help: 'Unresolved conflicts (entity fields), as GET /v1/conflicts lists them.',
      registers,
      async collect() {
        this.set((await store.conflicts()).length)
      },
    })
    new Gauge({
      name: 'meshsync_version_vector_total',
      help: 'Sum of the node version vector: changes applied here, from every origin.',
      registers,
      collect() {
        this.set(Object.values(store.versionVector).reduce((a, b) => a + b, 0))
      },
    })
    new Gauge({
      name: 'meshsync_leveldb_bytes',
      help: 'Bytes of the LevelDB directory on disk (tables, logs, manifest).',
      registers,
      async collect() {
        let total = 0
        for (const name of await readdir(dbDir).catch(() => [] as string[])) {
          total += (await stat(join(dbDir, name)).catch(() => ({ size: 0 }))).size
        }
        this.set(total)
      },
    })
    new Gauge({
      name: 'meshsync_event_loop_delay_p99_seconds',
      help: 'p99 event-loop delay since the previous scrape.',
      registers,
      collect: () => {
        const gauge = this.registry.getSingleMetric('meshsync_event_loop_delay_p99_seconds') as Gauge
        gauge.set(this.#loopDelay.percentile(99) / 1e9)
        this.#loopDelay.reset()
      },
    })
  }

  /** Adds the replication metrics (once the replicator exists; libp2p's own go in the same registry). */
  watchReplication(replicator: Replicator): void {
    const registers = [this.registry]
    const stats = replicator.stats
    const counters: [keyof typeof stats, string, string][] = [
      ['gossipIn', 'meshsync_gossip_changes_received_total', 'Change records received by gossip.'],
      ['gossipOut', 'meshsync_gossip_changes_published_total', 'Local change records handed to gossip (published when a peer listens).'],
      ['gossipDuplicates', 'meshsync_gossip_duplicates_total', 'Gossiped change records already here.'],
      ['gossipUnreached', 'meshsync_gossip_unreached_total', 'Connected peers a local commit was not gossiped to (synced by anti-entropy at once instead).'],
      ['sessions', 'meshsync_sync_sessions_total', 'Anti-entropy sessions completed.'],
      ['sessionFailures', 'meshsync_sync_session_failures_total', 'Anti-entropy sessions that failed.'],
      ['relayedSessions', 'meshsync_sync_sessions_relayed_total', 'Sessions that brought news no other path had (passed on to the other peers at once).'],
      ['headsBehind', 'meshsync_gossip_heads_behind_total', 'Heads of withheld gossip a peer told that were still missing here after a grace period (pulled from that peer).'],
      ['periodicSkipped', 'meshsync_sync_periodic_skipped_total', 'Periodic sessions not started: a session with the peer, started by either side, succeeded less than half a period before, or the peer was in sync.'],
      ['periodicInSync', 'meshsync_sync_periodic_in_sync_total', "Periodic sessions not started because the peer's state digest (from its link probe) matched this node's."],
      ['recordsIn', 'meshsync_sync_records_received_total', 'Change records received by anti-entropy.'],
      ['recordsOut', 'meshsync_sync_records_sent_total', 'Change records sent by anti-entropy.'],
      ['snapshotEntitiesIn', 'meshsync_snapshot_entities_received_total', 'Entity states received by snapshot catch-up.'],
      ['snapshotEntitiesOut', 'meshsync_snapshot_entities_sent_total', 'Entity states sent by snapshot catch-up.'],
      ['invalidInputs', 'meshsync_invalid_peer_inputs_total', 'Malformed or refused messages from peers (dropped).'],
      ['pendingDropped', 'meshsync_pending_dropped_total', 'Out-of-order changes dropped because the buffer was full.'],
      ['gcHorizonRefusals', 'meshsync_gc_horizon_refusals_total', 'Sync sessions refused because the peer lacked tombstone purges made here.'],
      ['gcRebootstraps', 'meshsync_gc_rebootstraps_total', 'Namespaces reloaded from a peer because this node lacked its tombstone purges.'],
    ]
    const gc = replicator.gcStats
    const gcCounters: [keyof typeof gc, string, string][] = [
      ['purged', 'meshsync_tombstones_purged_total', 'Tombstones purged by GC.'],
      ['staleChanges', 'meshsync_stale_changes_total', 'Remote changes made on a superseded incarnation or purged tombstone (recorded, not applied).'],
      ['incarnations', 'meshsync_entity_incarnations_total', 'Writes that started a new incarnation of a deleted entity.'],
    ]
    const relay = replicator.relayStats
    const read: [string, string, () => number][] = [
      ...counters.map(([key, name, help]): [string, string, () => number] => [name, help, () => stats[key]]),
      ...gcCounters.map(([key, name, help]): [string, string, () => number] => [name, help, () => gc[key]]),
      ['meshsync_gossip_forwarded_total', 'Gossip messages received and passed on to the mesh (some mesh peer is not reached by their origin).', () => relay.forwarded],
      ['meshsync_link_probes_total', 'Link probes sent (one small frame on each connection every few seconds; they carry the state digest).', () => replicator.linkStats.probes],
      ['meshsync_link_dead_total', 'Connections closed because a link probe went unanswered (or probes stopped coming).', () => replicator.linkStats.deadLinks],
      ['meshsync_gossip_withheld_total', 'Gossip messages received and not passed on: their origin reaches every mesh peer itself (their heads are told instead).', () => relay.withheld],
    ]
    for (const [name, help, value] of read) {
      // Monotonic counters kept by the replicator and the store, read at scrape time.
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset()
          this.inc(value())
        },
      })
    }
    new Gauge({
      name: 'meshsync_pending_changes',
      help: 'Remote changes waiting for their causal predecessors.',
      registers,
      collect() {
        this.set(replicator.pendingCount)
      },
    })
    new Gauge({
      name: 'meshsync_gossip_spacing_seconds',
      help: 'Least time between two gossip publishes now: grows from p2p.gossipPaceMs to p2p.gossipPaceMaxMs with the local change rate.',
      registers,
      collect() {
        this.set(replicator.gossipSpacingMs / 1000)
      },
    })
    const perPeer: [string, string, (p: ReturnType<Replicator['peerViews']>[number]) => number | null][] = [
      ['meshsync_peer_connected', 'Whether the peer is connected (1) or not (0).', (p) => (p.connected ? 1 : 0)],
      ['meshsync_peer_lag_changes', 'Changes this node has that the peer lacked at the end of the last sync.', (p) => p.behind],
      ['meshsync_peer_sync_bytes_in_total', 'Bytes received from the peer by anti-entropy.', (p) => p.bytesIn],
      ['meshsync_peer_sync_bytes_out_total', 'Bytes sent to the peer by anti-entropy.', (p) => p.bytesOut],
      ['meshsync_peer_gossip_bytes_in_total', 'Gossip bytes received from the peer (published or relayed by it).', (p) => p.gossipBytesIn],
      ['meshsync_peer_gossip_bytes_out_total', 'Gossip bytes published to the peer.', (p) => p.gossipBytesOut],
      ['meshsync_peer_invalid_inputs', 'Invalid messages from the peer since its last ban.', (p) => p.invalidInputs],
      ['meshsync_peer_last_sync_age_seconds', 'Seconds since the last completed sync with the peer.', (p) => (p.lastSyncAt === null ? null : (Date.now() - Date.parse(p.lastSyncAt)) / 1000)],
    ]
    for (const [name, help, read] of perPeer) {
      new Gauge({
        name,
        help,
        labelNames: ['peer'] as const,
        registers,
        collect() {
          this.reset()
          for (const p of replicator.peerViews()) {
            const v = read(p)
            if (v !== null) this.set({ peer: p.peerId }, v)
          }
        },
      })
    }
  }

  /** Gauges of the overlay (docs/sync-protocol.md, Membership and the overlay): peers connected, members known and alive, the watermarks. */
  watchOverlay(transport: { overlayStats(): OverlayStats }): void {
    const registers = [this.registry]
    const gauges: [string, string, (s: OverlayStats) => number][] = [
      ['meshsync_connected_peers', 'Peers with an open connection (the overlay keeps it between p2p.minConnections and p2p.maxConnections).', (s) => s.connectedPeers],
      ['meshsync_members_known', 'Cluster members this node knows (itself excepted), connected or not.', (s) => s.knownMembers],
      ['meshsync_members_alive', 'Members heard from (an announcement or a connection) within the last minute.', (s) => s.aliveMembers],
    ]
    for (const [name, help, read] of gauges) {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(transport.overlayStats()))
        },
      })
    }
  }

  /** The exposition text (Prometheus format). */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  /** Detaches from the store and stops the event-loop monitor. */
  close(): void {
    this.#sources.store.off('commit', this.#onCommit)
    this.#sources.store.off('durable', this.#onDurable)
    this.#loopDelay.disable()
  }
}
