import type { Stream } from '@libp2p/interface'
import type { ChangeRecord, Dot } from '../crdt/index.ts'
import type { RelayStats } from './gossip-relay.ts'

/** A validated inbound gossip message. */
export type InboundGossip =
  | { readonly kind: 'changes'; readonly changes: readonly ChangeRecord[]; readonly via: string; readonly bytes: number }
  | { readonly kind: 'announce'; readonly dot: Dot; readonly via: string; readonly bytes: number }
// `via`: the peer that sent the message (the origin, or a peer relaying it).

/** Why a peer's message was refused. */
export interface InvalidInput {
  readonly peerId: string
  readonly surface: 'gossip' | 'sync'
  readonly reason: string
}

/** Handler of inbound sync streams. */
export type SyncStreamHandler = (stream: Stream, peer: { peerId: string; nodeId: string }) => Promise<void>

/** A peer has these changes and did not pass them on: the node pulls the ones it lacks from `via`. */
export interface WithheldHeads {
  readonly via: string
  readonly heads: readonly Dot[]
}

/** The events replication listens to (a subset of the mesh transport's). */
export interface ReplicationTransportEvents {
  'peer:connect': [peerId: string]
  'peer:disconnect': [peerId: string]
  /** A peer joined the changes topic: gossip from here on reaches it. */
  'peer:subscribed': [peerId: string]
  gossip: [InboundGossip]
  heads: [WithheldHeads]
  invalid: [InvalidInput]
  /** A peer's state digest (its version vector's, see `setStateDigest`) arrived with a link probe. */
  'peer:digest': [peerId: string, digest: Uint8Array]
}

/** `on` and `off` of the events replication listens to (one overload an event, as a typed EventEmitter's methods satisfy). */
export interface ReplicationTransportListen {
  (event: 'peer:connect', listener: (peerId: string) => void): unknown
  (event: 'peer:disconnect', listener: (peerId: string) => void): unknown
  (event: 'peer:subscribed', listener: (peerId: string) => void): unknown
  (event: 'gossip', listener: (gossip: InboundGossip) => void): unknown
  (event: 'heads', listener: (heads: WithheldHeads) => void): unknown
  (event: 'invalid', listener: (input: InvalidInput) => void): unknown
  (event: 'peer:digest', listener: (peerId: string, digest: Uint8Array) => void): unknown
}

/** A local change as it is published: the record and its encoding. */
export interface PublishedChange {
  readonly change: ChangeRecord
  readonly bytes: Uint8Array
}

/**
 * The smallest transport the daemon's replicator needs (docs/architecture.md): events of peers
 * and gossip, sync and full-refresh streams, gossip publishing and dialing. `MeshTransport`
 * implements it over libp2p; tests pass a fake.
 */
export interface ReplicationTransport {
  /** This node's peer id (its string form is what peers are compared by). */
  readonly peerId: { toString(): string }
  on: ReplicationTransportListen
  off: ReplicationTransportListen
  /**
   * True when the transport keeps its own connections (an overlay dials members as they come and
   * go): the replicator then dials only seed addresses, not every peer it remembers.
   */
  readonly maintainsOverlay?: boolean
  /** Peers with an open connection. */
  connectedPeers(): string[]
  /**
   * Every member of the cluster the transport knows of, connected or not (optional: without it
   * the replicator knows only the peers it met). Tombstone GC waits for each one's acknowledgement.
   */
  members?(): readonly { readonly peerId: string }[]
  /** Addresses a peer listens on, each ending in `/p2p/<peerId>`. */
  dialableAddrs(peerId: string): Promise<string[]>
  /**
   * Dials a multiaddr (with `/p2p/<id>`) or a known peer id; resolves with the peer id. With
   * `onlyIfNeeded`, a transport that maintains an overlay may refuse a peer it does not need.
   */
  dial(target: string, options?: { signal?: AbortSignal; onlyIfNeeded?: boolean }): Promise<string>
  /** Closes every connection to a peer. */
  hangUp(peerId: string): Promise<void>
  /** Registers the handler of inbound sync streams. */
  handleSync(handler: SyncStreamHandler): void
  /** Registers the handler of inbound full-refresh (resync) streams. */
  handleResync(handler: SyncStreamHandler): void
  /** Opens a sync stream to a peer. */
  openSyncStream(peerId: string, options?: { signal?: AbortSignal }): Promise<Stream>
  /** Opens a full-refresh stream to a peer. */
  openResyncStream(peerId: string, options?: { signal?: AbortSignal }): Promise<Stream>
  /** Publishes local changes on gossip; resolves with the peers every message reached, and the bytes sent to each. */
  publishChanges(changes: readonly PublishedChange[]): Promise<{ recipients: string[]; bytesTo: Map<string, number> }>
  /**
   * What this node tells its connected peers, every few seconds, as its state digest (8 bytes);
   * they answer with theirs ('peer:digest'). Optional: without it no digests arrive, and every
   * periodic anti-entropy session runs.
   */
  setStateDigest?(digest: () => Uint8Array): void
  /** Forwarding decisions on received gossip. */
  readonly relayStats: Readonly<RelayStats>
  /** Link probes sent, and connections closed because their link went silent (optional). */
  readonly linkStats?: Readonly<{ probes: number; deadLinks: number }>
}
