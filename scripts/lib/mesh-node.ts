import { pino } from 'pino'
import { PeerBook } from '../../daemon/replication/peer-book.ts'
import { Replicator, type ReplicatorOptions } from '../../daemon/replication/replicator.ts'
import { MemoryKvStore, type KvStore } from '../../daemon/storage/index.ts'
import { EntityStore, type ConflictPolicy, type EntityStoreOptions, type NamespaceMode } from '../../daemon/store/entity-store.ts'
import { generateClusterKey, generateIdentityKey, identityFromKey, MeshTransport, type NodeIdentity } from '../../transport/index.ts'

/** One in-process meshsync node: store + libp2p transport (real TCP, pnet, Noise) + replicator. */
export interface MeshNode {
  readonly identity: NodeIdentity
  readonly store: EntityStore
  readonly transport: MeshTransport
  readonly replicator: Replicator
  readonly peers: PeerBook
  readonly kv: KvStore
  addr(): string
  stop(): Promise<void>
}

export interface MeshNodeOptions {
  clusterKey: Uint8Array
  identityKey?: Uint8Array
  kv?: KvStore
  gossip?: boolean
  signGossip?: boolean
  dropInboundGossip?: () => boolean
  allowPeers?: string[]
  /** Period of the transport's link probes (default 5 s). */
  linkProbeMs?: number
  modes?: Record<string, NamespaceMode>
  policies?: Record<string, ConflictPolicy>
  replicator?: ReplicatorOptions
  store?: EntityStoreOptions
  listen?: string[]
}

export const silentLogger = pino({ level: process.env.MESHSYNC_TEST_LOG ?? 'silent' })

export function newClusterKey(): Uint8Array {
  return generateClusterKey()
}

export async function startMeshNode(options: MeshNodeOptions): Promise<MeshNode> {
  const identity = identityFromKey(options.identityKey ?? (await generateIdentityKey()))
  const kv = options.kv ?? new MemoryKvStore()
  const store = new EntityStore(
    { kv, nodeId: identity.nodeId, logger: silentLogger },
    { modeOf: (ns) => options.modes?.[ns] ?? 'two-way', conflictPolicyOf: (ns) => options.policies?.[ns] ?? 'auto', ...options.store },
  )
  await store.open()
  const peers = new PeerBook()
  const transport = new MeshTransport({
    privateKey: identity.privateKey,
    clusterKey: options.clusterKey,
    listen: options.listen ?? ['/ip4/127.0.0.1/tcp/0'],
    mdns: false,
    gossip: options.gossip ?? true,
    ...(options.signGossip !== undefined && { signGossip: options.signGossip }),
    ...(options.allowPeers && { allowPeers: options.allowPeers }),
    ...(options.linkProbeMs !== undefined && { linkProbeMs: options.linkProbeMs }),
    ...(options.dropInboundGossip && { dropInboundGossip: options.dropInboundGossip }),
    denyPeer: (p) => peers.isBanned(p),
  })
  await transport.start()
  const replicator = new Replicator({ store, transport, peers, logger: silentLogger }, { antiEntropyIntervalMs: 60_000, ...options.replicator })
  replicator.start()
  return {
    identity,
    store,
    transport,
    replicator,
    peers,
    kv,
    addr: () => transport.listenAddrs()[0] as string,
    stop: async () => {
      await replicator.stop()
      await transport.stop()
      await store.close()
    },
  }
}
