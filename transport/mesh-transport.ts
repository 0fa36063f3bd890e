import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub, StrictNoSign, StrictSign, TopicValidatorResult, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'
import { mdns } from '@libp2p/mdns'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { EventEmitter } from 'node:events'
import type { Registry } from 'prom-client'
import { CodecError, decodeChange, type ChangeRecord, type Dot } from '../crdt/index.ts'
import {
  changesTopic,
  decodeGossip,
  decodeRelayMessage,
  encodeGossip,
  encodeRelayMessage,
  GOSSIP_ANNOUNCE,
  GOSSIP_CHANGES,
  gossipRecordCost,
  linksTopic,
  MAX_GOSSIP_BYTES,
  MAX_GOSSIP_RECORDS,
  RELAY_HEADS,
  RELAY_LINKS,
} from './gossip-messages.ts'
import { checkedDial, DialError } from './dial-diagnosis.ts'
import { GossipRelay, linksRefreshMs, type RelayStats } from './gossip-relay.ts'
import { HandshakeLog, type HandshakeObservation } from './handshake-log.ts'
import { DIGEST_BYTES, LinkMonitor, type LinkMonitorStats } from './link-monitor.ts'
import { nodeIdOf, nodeIdOfPeerId } from './identity.ts'
import { Membership, type Member } from './membership.ts'
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MIN_CONNECTIONS, degreeBand, OverlayMaintainer } from './overlay.ts'
import { privateNetwork } from './private-network.ts'
import type { InboundGossip, InvalidInput, ReplicationTransport, SyncStreamHandler } from './replication-transport.ts'
import { RESYNC_PROTOCOL, SYNC_PROTOCOL } from './sync-frames.ts'

/** How a node joins the mesh. */
export interface MeshTransportInit {
  readonly privateKey: PrivateKey
  /** libp2p pnet pre-shared key file contents: only holders can connect. */
  readonly clusterKey: Uint8Array
  readonly listen: readonly string[]
  readonly bootstrap?: readonly string[]
  readonly mdns?: boolean
  /** mDNS query interval in ms (default 10 s). */
  readonly mdnsIntervalMs?: number
  /** Period of the link probes that find silent connections (default 5 s, {@link LinkMonitor}). */
  readonly linkProbeMs?: number
  /** When non-empty, only these peer ids may connect (either direction). */
  readonly allowPeers?: readonly string[]
  /** Gossip on (default). Off: anti-entropy alone carries changes. */
  readonly gossip?: boolean
  /**
   * Sign every gossip message and use the signed topic of nodes before 0.2 (default off: unsigned
   * messages on `meshsync/changes/2`). Nodes on different settings do not gossip with each other;
   * anti-entropy still carries everything between them.
   */
  readonly signGossip?: boolean
  /** Registry for libp2p's own metrics (connections, streams, protocol traffic). */
  readonly metricsRegistry?: Registry
  /** Peers refused for now (e.g. banned for invalid input), besides the allowlist. */
  readonly denyPeer?: (peerId: string) => boolean
  /** Test hook: return true to drop an inbound gossip message before validation. */
  readonly dropInboundGossip?: () => boolean
  /** Least number of peers to keep connections to: below it, known members are dialed (default 6). */
  readonly minConnections?: number
  /** Most peers to keep connections to: above it, connections are closed (default 12). */
  readonly maxConnections?: number
  /** Where libp2p keeps its peer store (every member's signed record); in memory when absent. */
  readonly datastore?: Datastore
}

/** The overlay's state, for metrics. */
export interface OverlayStats {
  readonly connectedPeers: number
  readonly knownMembers: number
  readonly aliveMembers: number
  readonly minConnections: number
  readonly maxConnections: number
}

export interface MeshTransportEvents {
  'peer:connect': [peerId: string]
  'peer:disconnect': [peerId: string]
  /** A peer found by mDNS or bootstrap (the transport dials it). */
  'peer:discovery': [peerId: string]
  gossip: [InboundGossip]
  /** A peer joined the changes topic: gossip from here on reaches it. */
  'peer:subscribed': [peerId: string]
  /** A peer has these changes and did not pass them on (see {@link GossipRelay}): the node pulls the ones it lacks from `via`. */
  heads: [{ readonly via: string; readonly heads: readonly Dot[] }]
  invalid: [InvalidInput]
  /** A peer's state digest arrived with a link probe (see {@link LinkMonitor}). */
  'peer:digest': [peerId: string, digest: Uint8Array]
  /** An inbound connection whose first bytes did not decrypt with this node's cluster key (docs/operations.md, Dial failures). */
  'handshake:mismatch': [HandshakeObservation]
  /** A {@link MeshTransport.dial} failed, or succeeded (`target` as given). */
  'dial:failed': [DialError]
  'dial:succeeded': [{ readonly target: string; readonly peerId: string }]
}

/** Wait after a subscription change before announcing this node's links (one message per burst). */
const LINKS_DEBOUNCE_MS = 50
/** Wait after withholding a change before telling the peers its head (one message per burst). */
const HEADS_DELAY_MS = 200

/** How much older than a new connection to the same peer a connection must be to be closed for it (see {@link supersedeOlderConnections}). */
export const SUPERSEDE_AFTER_MS = 2000

/**
 * The node's libp2p side: TCP + pnet + Noise + Yamux, identify, ping, gossipsub, mDNS and
 * bootstrap discovery, an allowlist gater, and the sync protocol's streams. Moves bytes and
 * typed messages; knows nothing of storage.
 */
export class MeshTransport extends EventEmitter<MeshTransportEvents> implements ReplicationTransport {
  /** The overlay dials this node's peers (docs/sync-protocol.md, Membership and the overlay): the replicator dials only seed addresses. */
  readonly maintainsOverlay = true
  readonly peerId: PeerId
  readonly nodeId: string
  readonly #init: MeshTransportInit
  #node: Libp2p<{ pubsub: GossipSub }> | undefined
  #syncHandler: SyncStreamHandler | undefined
  #resyncHandler: SyncStreamHandler | undefined
  /** True when this node signs its gossip (`p2p.signGossip`, the older topic). */
  readonly #signed: boolean
  /** The changes topic this node gossips on (by its signature policy). */
  readonly gossipTopic: string
  /** Whether a changes message received is passed on (see {@link GossipRelay}). */
  readonly #relay = new GossipRelay({ members: () => this.#membership?.size ?? 0 })
  readonly #nodeIds = new Map<string, string>()
  #linksTimer: NodeJS.Timeout | undefined
  #linksSoon: NodeJS.Timeout | undefined
  #headsSoon: NodeJS.Timeout | undefined
  #membership: Membership | undefined
  #overlay: OverlayMaintainer | undefined
  #linkMonitor: LinkMonitor | undefined
  #stateDigest: () => Uint8Array = () => new Uint8Array(DIGEST_BYTES)
  /** Recent connections' first bytes, to tell why a dial failed (see {@link checkedDial}). */
  readonly #handshakes = new HandshakeLog({ onInboundMismatch: (o) => this.emit('handshake:mismatch', o) })

  constructor(init: MeshTransportInit) {
    super()
    this.#init = init
    this.#signed = init.signGossip ?? false
    this.gossipTopic = changesTopic(this.#signed)
    this.peerId = peerIdFromPrivateKey(init.privateKey)
    this.nodeId = nodeIdOf(this.peerId)
  }

  /** Starts libp2p: listens, subscribes, begins discovery. Idempotent. */
  async start(): Promise<void> {
    if (this.#node) return
    const init = this.#init
    const allow = init.allowPeers && init.allowPeers.length > 0 ? new Set(init.allowPeers) : undefined
    const denied = (peer: PeerId): boolean =>
      (allow !== undefined && !allow.has(peer.toString())) || (init.denyPeer?.(peer.toString()) ?? false)
    const minConnections = init.minConnections ?? DEFAULT_MIN_CONNECTIONS
    const maxConnections = Math.max(minConnections, init.maxConnections ?? DEFAULT_MAX_CONNECTIONS)
    const discovery = []
    if (init.mdns ?? true) discovery.push(mdns({ interval: init.mdnsIntervalMs ?? 10_000, serviceTag: '_meshsync._udp.local' }))
    if (init.bootstrap && init.bootstrap.length > 0) discovery.push(bootstrap({ list: [...init.bootstrap], timeout: 100 }))
    const node = await createLibp2p({
      privateKey: init.privateKey,
      ...(init.datastore && { datastore: init.datastore }),
      addresses: { listen: [...init.listen] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionProtector: privateNetwork(init.clusterKey, { handshakes: this.#handshakes }),
      connectionGater: {
        denyDialMultiaddr: () => false,
        denyInboundEncryptedConnection: denied,
        denyOutboundEncryptedConnection: denied,
      },
      // The overlay keeps the degree between the watermarks; this hard cap (connections, not peers)
      // refuses inbound ones past it, leaving room for newcomers while the overlay trims.
      connectionManager: { dialTimeout: 10_000, maxConnections: Math.max(2 * maxConnections, maxConnections + 8) },
      // Silent links are found by the LinkMonitor (one stream per connection), not by libp2p's
      // monitor (a new ping stream per connection every interval).
      connectionMonitor: { enabled: false },
      ...(init.metricsRegistry && { metrics: prometheusMetrics({ registry: init.metricsRegistry, collectDefaultMetrics: false }) }),
      peerDiscovery: discovery,
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({
          emitSelf: false,
          allowPublishToZeroTopicPeers: true,
          maxInboundDataLength: MAX_GOSSIP_BYTES + 4096,
          fallbackToFloodsub: false,
          // Small meshes: publish to every subscribed peer, not only the mesh.
          floodPublish: true,
          heartbeatInterval: 500,
          // Unsigned by default: Noise already authenticates every hop, and a member holding the
          // cluster key is trusted to relay honestly on the sync protocol too, so a signature per
          // message (an Ed25519 sign and a verify at each receiver) bought no protection.
          globalSignaturePolicy: this.#signed ? StrictSign : StrictNoSign,
          ...gossipMeshParams(minConnections, maxConnections),
          // A cluster of trusted members (they hold the cluster key): many behind one address (a
          // NAT, a container host, loopback here) is normal, not a Sybil attack. With the default
          // IP-colocation penalty, 15 peers on one IP scored below the graylist threshold and
          // gossip stopped altogether (docs/sync-protocol.md, Membership and the overlay).
          scoreParams: { IPColocationFactorWeight: 0 },
        }),
      },
    })
    this.#node = node
    node.addEventListener('peer:connect', (e) => this.emit('peer:connect', e.detail.toString()))
    node.addEventListener('peer:disconnect', (e) => this.emit('peer:disconnect', e.detail.toString()))
    node.addEventListener('connection:open', (e) => supersedeOlderConnections(node, e.detail))
    const membership = new Membership(node, {
      privateKey: init.privateKey,
      denied,
      degree: () => this.#connectedSince().size,
      degreeBand: (degree) => degreeBand(degree, minConnections, maxConnections),
      gossip: init.gossip ?? true,
      // A member heard alive is dialed without waiting out the backoff of dials that failed while it was down.
      heard: (peerId) => this.#overlay?.heard(peerId),
    })
    this.#membership = membership
    const overlay = new OverlayMaintainer(
      {
        connected: () => this.#connectedSince(),
        members: () => membership.members(),
        dial: async (peerId) => {
          await node.dial(peerIdFromString(peerId), { signal: AbortSignal.timeout(10_000) })
        },
        hangUp: (peerId) => node.hangUp(peerIdFromString(peerId)),
      },
      { minConnections, maxConnections },
    )
    this.#overlay = overlay
    node.addEventListener('peer:discovery', (e) => {
      const peer = e.detail.id
      if (peer.equals(this.peerId) || denied(peer)) return
      this.emit('peer:discovery', peer.toString())
      // Dialed only while the overlay needs connections (mDNS on a LAN finds every node; docs/sync-protocol.md, Membership and the overlay).
      if (node.getConnections(peer).length === 0 && !overlay.full()) {
        void node.dial(peer, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined)
      }
      overlay.tickSoon()
    })
    node.addEventListener('peer:connect', (e) => {
      overlay.connected(e.detail.toString())
      membership.degreeChanged()
    })
    node.addEventListener('peer:disconnect', (e) => {
      overlay.disconnected(e.detail.toString())
      overlay.tickSoon()
      membership.degreeChanged()
    })
    node.addEventListener('connection:open', (e) => {
      // The dialing side asks for every member the peer knows (a newcomer learns the cluster from its bootstrap peer).
      if (e.detail.direction === 'outbound') void membership.exchange(e.detail.remotePeer.toString()).then(() => overlay.tickSoon(), () => undefined)
    })
    if (init.gossip ?? true) this.#setupGossip(node)
    await node.handle(
      SYNC_PROTOCOL,
      (stream, connection) => {
        const handler = this.#syncHandler
        if (!handler) {
          stream.abort(new Error('sync not ready'))
          return
        }
        const peerId = connection.remotePeer
        void handler(stream, { peerId: peerId.toString(), nodeId: nodeIdOf(peerId) }).catch(() => undefined)
      },
      { maxInboundStreams: 4, maxOutboundStreams: 4 },
    )
    await node.handle(
      RESYNC_PROTOCOL,
      (stream, connection) => {
        const handler = this.#resyncHandler
        if (!handler) {
          stream.abort(new Error('resync not ready'))
          return
        }
        const peerId = connection.remotePeer
        void handler(stream, { peerId: peerId.toString(), nodeId: nodeIdOf(peerId) }).catch(() => undefined)
      },
      { maxInboundStreams: 2, maxOutboundStreams: 2 },
    )
    await membership.start()
    overlay.start()
    const linkMonitor = new LinkMonitor(node, {
      ...(init.linkProbeMs !== undefined && { intervalMs: init.linkProbeMs }),
      digest: () => this.#stateDigest(),
      onDigest: (peerId, digest) => this.emit('peer:digest', peerId, digest),
    })
    this.#linkMonitor = linkMonitor
    await linkMonitor.start()
  }

  /** Stops libp2p (closes every connection). Idempotent. */
  async stop(): Promise<void> {
    const node = this.#node
    this.#node = undefined
    clearTimeout(this.#linksTimer)
    clearTimeout(this.#linksSoon)
    this.#linksSoon = undefined
    clearTimeout(this.#headsSoon)
    this.#headsSoon = undefined
    this.#overlay?.stop()
    this.#membership?.stop()
    this.#linkMonitor?.stop()
    await node?.stop()
  }

  /** Full multiaddrs this node listens on, each ending in `/p2p/<peerId>`. */
  listenAddrs(): string[] {
    return (this.#node?.getMultiaddrs() ?? []).map((ma) => ma.toString())
  }

  /**
   * Peers with an open connection. (Not `getPeers()`: it passes the ids through a PeerSet, which
   * parses each one back from its string, and its `toString` encodes it again: ~0.1 ms a call, and
   * the replicator asks after every gossip publish.)
   */
  connectedPeers(): string[] {
    const peers = new Set<string>()
    for (const connection of this.#node?.getConnections() ?? []) peers.add(connection.remotePeer.toString())
    return [...peers]
  }

  /** Every member of the cluster this node knows (itself excepted): addresses, last heard, degree. */
  members(): Member[] {
    return this.#membership?.members() ?? []
  }

  /** Connected peers, known and alive members, and the watermarks. */
  overlayStats(): OverlayStats {
    const members = this.members()
    return {
      connectedPeers: this.#connectedSince().size,
      knownMembers: members.length,
      aliveMembers: members.filter((m) => m.alive).length,
      minConnections: this.#overlay?.minConnections ?? this.#init.minConnections ?? DEFAULT_MIN_CONNECTIONS,
      maxConnections: this.#overlay?.maxConnections ?? this.#init.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    }
  }

  /** The overlay's backoff of a member whose dials failed: failures in a row, and when it is dialed again at the earliest (undefined: none). */
  overlayBackoff(peerId: string): { readonly failures: number; readonly dueAt: number } | undefined {
    return this.#overlay?.backoff(peerId)
  }

  /** Connected peers, each with when its oldest open connection opened (ms since the epoch). */
  #connectedSince(): Map<string, number> {
    const since = new Map<string, number>()
    for (const c of this.#node?.getConnections() ?? []) {
      const peer = c.remotePeer.toString()
      since.set(peer, Math.min(since.get(peer) ?? Infinity, c.timeline.open))
    }
    return since
  }

  /** This node's connections to a peer, oldest first (`opened`: ms since the epoch, when its socket opened). */
  connectionsTo(peerId: string): { id: string; status: string; opened: number }[] {
    return (this.#node?.getConnections(peerIdFromString(peerId)) ?? []).map((c) => ({ id: c.id, status: c.status, opened: c.timeline.open }))
  }

  /** Forwarding decisions on received gossip (see {@link GossipRelay}). */
  get relayStats(): Readonly<RelayStats> {
    return this.#relay.stats
  }

  /** The node ids `origin` last announced its changes reach (undefined: none recent). */
  reachOf(origin: string): ReadonlySet<string> | undefined {
    return this.#relay.reachOf(origin)
  }

  /** Peers in this node's gossipsub mesh of the changes topic: the ones it may pass a change on to. */
  gossipMeshPeers(): string[] {
    const pubsub = this.#node?.services.pubsub
    return pubsub ? meshPeersOf(pubsub, this.gossipTopic) : []
  }

  /** Peers subscribed to this node's changes topic: the ones its gossip reaches. */
  gossipPeers(): string[] {
    return (this.#node?.services.pubsub.getSubscribers(this.gossipTopic) ?? []).map((p) => p.toString())
  }

  /** Addresses a peer listens on (from identify), each ending in `/p2p/<peerId>`. */
  async dialableAddrs(peerId: string): Promise<string[]> {
    const node = this.#node
    if (!node) return []
    try {
      const peer = await node.peerStore.get(peerIdFromString(peerId))
      return peer.addresses
        .map((a) => a.multiaddr.toString())
        .filter((a) => !a.includes('/p2p-circuit'))
        .map((a) => (a.includes('/p2p/') ? a : `${a}/p2p/${peerId}`))
    } catch {
      return []
    }
  }

  /**
   * Dials a multiaddr (with `/p2p/<id>`) or a known peer id; resolves with the peer id. An explicit
   * dial (an operator's, a test's) is always made. With `onlyIfNeeded` (an automatic dial, e.g. of
   * a seed address), a dial to a peer not connected yet is refused ({@link OverlayFullError}) while
   * the node has its low watermark of peers: the overlay chooses the node's neighbours.
   * A failed dial throws a DialError naming its likely cause (docs/operations.md, Dial failures).
   */
  async dial(target: string, options: { signal?: AbortSignal; onlyIfNeeded?: boolean } = {}): Promise<string> {
    const node = this.#requireNode()
    const to: Multiaddr | PeerId = target.startsWith('/') ? multiaddr(target) : peerIdFromString(target)
    if (options.onlyIfNeeded === true && this.#overlay?.full()) {
      const peer = isPeerId(to) ? to : to.getComponents().findLast((c) => c.name === 'p2p')?.value
      if (peer === undefined || node.getConnections(typeof peer === 'string' ? peerIdFromString(peer) : peer).length === 0) {
        throw new OverlayFullError(`not dialing ${target}: ${this.#connectedSince().size} peers connected, the overlay needs no more`)
      }
    }
    const connection = await checkedDial(node, target, to, this.#handshakes, options.signal ?? AbortSignal.timeout(10_000)).catch((error: unknown) => {
      if (error instanceof DialError) this.emit('dial:failed', error)
      throw error
    })
    const peerId = connection.remotePeer.toString()
    this.emit('dial:succeeded', { target, peerId })
    return peerId
  }

  /** Closes every connection to a peer (e.g. a repeat offender). */
  async hangUp(peerId: string): Promise<void> {
    await this.#node?.hangUp(peerIdFromString(peerId)).catch(() => undefined)
  }

  /** Registers the handler of inbound sync streams. */
  handleSync(handler: SyncStreamHandler): void {
    this.#syncHandler = handler
  }

  /** What this node's link probes carry as its state digest (8 bytes; the replicator's version vector digest). */
  setStateDigest(digest: () => Uint8Array): void {
    this.#stateDigest = digest
  }

  /** Link probes sent and connections closed as dead (zeros before start). */
  get linkStats(): Readonly<LinkMonitorStats> {
    return this.#linkMonitor?.stats ?? { probes: 0, deadLinks: 0 }
  }

  /** Registers the handler of inbound full-refresh (resync) streams. */
  handleResync(handler: SyncStreamHandler): void {
    this.#resyncHandler = handler
  }

  /** Opens a full-refresh stream to a peer. */
  async openResyncStream(peerId: string, options: { signal?: AbortSignal } = {}): Promise<Stream> {
    const node = this.#requireNode()
    return node.dialProtocol(peerIdFromString(peerId), RESYNC_PROTOCOL, { signal: options.signal ?? AbortSignal.timeout(10_000) })
  }

  /** Opens a sync stream to a connected (or dialable) peer. */
  async openSyncStream(peerId: string, options: { signal?: AbortSignal } = {}): Promise<Stream> {
    const node = this.#requireNode()
    return node.dialProtocol(peerIdFromString(peerId), SYNC_PROTOCOL, { signal: options.signal ?? AbortSignal.timeout(10_000) })
  }

  /**
   * Publishes the local changes of one commit at once, as few messages as the size limit
   * allows. A record over the limit is announced (origin, seq) and peers pull it over the sync
   * protocol. Resolves with the peers every message reached, and the bytes sent to each peer.
   */
  async publishChanges(changes: readonly { change: ChangeRecord; bytes: Uint8Array }[]): Promise<{ recipients: string[]; bytesTo: Map<string, number> }> {
    const node = this.#node
    const bytesTo = new Map<string, number>()
    if (!node || !(this.#init.gossip ?? true) || changes.length === 0) return { recipients: [], bytesTo }
    // Nobody listens yet: skip the encoding (and signing). A peer that subscribes later is synced at once.
    if (node.services.pubsub.getSubscribers(this.gossipTopic).length === 0) return { recipients: [], bytesTo }
    const messages: Uint8Array[] = []
    let batch: Uint8Array[] = []
    let size = 16
    const flush = (): void => {
      if (batch.length > 0) messages.push(encodeGossip({ type: GOSSIP_CHANGES, records: batch }))
      batch = []
      size = 16
    }
    for (const { change, bytes } of changes) {
      const cost = gossipRecordCost(bytes)
      if (cost + 16 > MAX_GOSSIP_BYTES) {
        messages.push(encodeGossip({ type: GOSSIP_ANNOUNCE, dot: { origin: change.origin, seq: change.seq } }))
        continue
      }
      if (size + cost > MAX_GOSSIP_BYTES || batch.length >= MAX_GOSSIP_RECORDS) flush()
      batch.push(bytes)
      size += cost
    }
    flush()
    let reached: Set<string> | undefined
    for (const message of messages) {
      try {
        const result = await node.services.pubsub.publish(this.gossipTopic, message)
        const to = new Set(result.recipients.map((p) => p.toString()))
        for (const peer of to) bytesTo.set(peer, (bytesTo.get(peer) ?? 0) + message.length)
        reached = reached === undefined ? to : new Set([...reached].filter((p) => to.has(p)))
      } catch {
        reached = new Set()
      }
    }
    return { recipients: [...(reached ?? [])], bytesTo }
  }

  #setupGossip(node: Libp2p<{ pubsub: GossipSub }>): void {
    const pubsub = node.services.pubsub
    const topic = this.gossipTopic
    const links = linksTopic(this.#signed)
    pubsub.topicValidators.set(topic, (peer, message) => {
      if (this.#init.dropInboundGossip?.()) return TopicValidatorResult.Ignore
      const via = peer.toString()
      let inbound: InboundGossip
      try {
        // gossipsub has already refused a message that breaks the topic's signature policy.
        const signer = message.type === 'signed' ? message.from : undefined
        const decoded = decodeGossip(message.data)
        const changes = decoded.type === GOSSIP_CHANGES ? decoded.records.map((record) => decodeChange(record)) : []
        const origin = decoded.type === GOSSIP_CHANGES ? changes[0]?.origin : decoded.dot.origin
        // A node publishes only its own changes (relaying is the mesh's forwarding), so every
        // record of a message has one origin, and on the signed topic it is the signer.
        if (changes.some((c) => c.origin !== origin)) throw new CodecError('gossip message mixes the changes of several origins')
        if (signer && origin !== undefined && origin !== nodeIdOf(signer)) throw new CodecError('gossip change from a node that is not its origin')
        const bytes = message.data.length
        inbound = decoded.type === GOSSIP_CHANGES ? { kind: 'changes', changes, via, bytes } : { kind: 'announce', dot: decoded.dot, via, bytes }
      } catch (error) {
        this.emit('invalid', { peerId: via, surface: 'gossip', reason: error instanceof Error ? error.message : String(error) })
        return TopicValidatorResult.Reject
      }
      // Delivered here, whatever is decided about forwarding: Ignore (no penalty for the sender)
      // is how a validator keeps gossipsub from passing a message on.
      this.emit('gossip', inbound)
      const head = inbound.kind === 'changes' ? lastDot(inbound.changes) : inbound.dot
      const mesh = meshPeersOf(pubsub, topic).map((p) => this.#nodeIdOfPeer(p))
      const subscribers = pubsub.getSubscribers(topic).map((p) => this.#nodeIdOfPeer(p.toString()))
      if (this.#relay.shouldForward(head, this.#nodeIdOfPeer(via), mesh, subscribers)) return TopicValidatorResult.Accept
      this.#announceHeadsSoon()
      return TopicValidatorResult.Ignore
    })
    pubsub.topicValidators.set(links, (peer, message) => {
      try {
        const decoded = decodeRelayMessage(message.data)
        if (decoded.type === RELAY_LINKS) {
          if (decoded.origin !== this.nodeId) this.#relay.learn(decoded.origin, decoded.reaches)
          return TopicValidatorResult.Accept
        }
        // Heads concern the sender's direct peers only: not passed on.
        this.emit('heads', { via: peer.toString(), heads: decoded.heads })
        return TopicValidatorResult.Ignore
      } catch (error) {
        this.emit('invalid', { peerId: peer.toString(), surface: 'gossip', reason: error instanceof Error ? error.message : String(error) })
        return TopicValidatorResult.Reject
      }
    })
    pubsub.addEventListener('subscription-change', (e) => {
      if (e.detail.subscriptions.some((sub) => sub.topic === topic && sub.subscribe)) {
        this.emit('peer:subscribed', e.detail.peerId.toString())
      }
      // Who this node's changes reach changed, or a peer joined the links topic: tell them.
      if (e.detail.subscriptions.some((sub) => sub.topic === topic || (sub.topic === links && sub.subscribe))) this.#announceLinksSoon()
    })
    node.addEventListener('peer:disconnect', () => this.#announceLinksSoon())
    this.#refreshLinksLater()
    pubsub.subscribe(topic)
    pubsub.subscribe(links)
  }

  /** Announces this node's links again after a refresh period (longer in a larger cluster, {@link linksRefreshMs}), and so on. */
  #refreshLinksLater(): void {
    const period = linksRefreshMs(this.#membership?.size ?? 0)
    this.#linksTimer = setTimeout(() => {
      if (!this.#node) return
      this.#announceLinks()
      this.#refreshLinksLater()
    }, period * (0.9 + Math.random() * 0.2))
    this.#linksTimer.unref()
  }

  /** Announces this node's links shortly (a burst of subscription changes makes one message). */
  #announceLinksSoon(): void {
    if (this.#linksSoon !== undefined) return
    this.#linksSoon = setTimeout(() => {
      this.#linksSoon = undefined
      this.#announceLinks()
    }, LINKS_DEBOUNCE_MS)
    this.#linksSoon.unref()
  }

  /** Publishes which nodes this node's changes gossip reaches directly (its changes topic's subscribers). */
  #announceLinks(): void {
    const pubsub = this.#node?.services.pubsub
    if (!pubsub) return
    const reaches = pubsub.getSubscribers(this.gossipTopic).map((p) => this.#nodeIdOfPeer(p.toString()))
    pubsub.publish(linksTopic(this.#signed), encodeRelayMessage({ type: RELAY_LINKS, origin: this.nodeId, reaches })).catch(() => undefined)
  }

  /** Tells the peers, shortly, the heads of the changes withheld meanwhile (one message per burst). */
  #announceHeadsSoon(): void {
    if (this.#headsSoon !== undefined) return
    this.#headsSoon = setTimeout(() => {
      this.#headsSoon = undefined
      const heads = this.#relay.takeWithheld()
      const pubsub = this.#node?.services.pubsub
      if (heads.length > 0 && pubsub) pubsub.publish(linksTopic(this.#signed), encodeRelayMessage({ type: RELAY_HEADS, heads })).catch(() => undefined)
    }, HEADS_DELAY_MS)
    this.#headsSoon.unref()
  }

  /** A peer's node id (cached: it is a SHA-256 of the peer id). */
  #nodeIdOfPeer(peerId: string): string {
    let nodeId = this.#nodeIds.get(peerId)
    if (nodeId === undefined) {
      nodeId = nodeIdOfPeerId(peerId)
      if (this.#nodeIds.size >= 4096) this.#nodeIds.clear()
      this.#nodeIds.set(peerId, nodeId)
    }
    return nodeId
  }

  #requireNode(): Libp2p<{ pubsub: GossipSub }> {
    if (!this.#node) throw new Error('transport is not started')
    return this.#node
  }
}

/** A dial refused because the node already has its low watermark of peers (see {@link MeshTransport.dial}). */
export class OverlayFullError extends Error {
  override readonly name = 'OverlayFullError'
}

function isPeerId(value: Multiaddr | PeerId): value is PeerId {
  return 'toMultihash' in value
}

/**
 * gossipsub's mesh degree for an overlay of `low`-`high` connections per node: D up to 6 (what
 * gossipsub recommends), never above the low watermark, so the mesh of each topic can be built
 * from the connections the overlay keeps, and a message crosses the cluster in a few hops.
 */
export function gossipMeshParams(low: number, high: number): { D: number; Dlo: number; Dhi: number; Dout: number } {
  const D = Math.max(1, Math.min(6, low))
  const Dlo = Math.max(1, D - 2)
  const Dhi = Math.max(D, high)
  const Dout = Math.max(0, Math.min(Math.floor(D / 2), Dlo - 1))
  return { D, Dlo, Dhi, Dout }
}

/** The highest (origin, seq) of a gossip message's changes (all of one origin). */
function lastDot(changes: readonly ChangeRecord[]): Dot {
  let last = changes[0] as ChangeRecord
  for (const c of changes) if (c.seq > last.seq) last = c
  return { origin: last.origin, seq: last.seq }
}

/**
 * The peers gossipsub forwards a topic's messages to (its mesh). The instance has `getMeshPeers`;
 * the interface it is published under does not declare it, so without it: every subscriber.
 */
function meshPeersOf(pubsub: GossipSub, topic: string): string[] {
  const instance = pubsub as GossipSub & { getMeshPeers?: (topic: string) => string[] }
  return instance.getMeshPeers?.(topic) ?? pubsub.getSubscribers(topic).map((p) => p.toString())
}

/**
 * A connection to a peer opened while an older one is still open: the older one is closed.
 *
 * libp2p dials a peer only when it holds no connection to it, so a second connection means the
 * peer gave up on the first: its side timed out during a partition or a link outage, and the
 * reset it sent was lost. Ours may not notice for up to a ping interval plus a ping timeout (5 s
 * plus 3-10 s), and meanwhile libp2p opens our streams (sync sessions, gossip) on the older,
 * dead connection, the first in its list, so the heal would wait on that. Connections opened
 * within {@link SUPERSEDE_AFTER_MS} of each other are left alone: two nodes that dial each other
 * at once both keep both, rather than each closing a different one.
 */
export function supersedeOlderConnections(node: Pick<Libp2p, 'getConnections'>, fresh: Connection): void {
  const opened = fresh.timeline.open
  for (const old of node.getConnections(fresh.remotePeer)) {
    if (old.id === fresh.id || old.status !== 'open' || old.timeline.open > opened - SUPERSEDE_AFTER_MS) continue
    old.abort(new Error('superseded by a newer connection to the same peer'))
  }
}
