/**
 * The libp2p side of meshsync: identity, the mesh transport (pnet + Noise + Yamux, discovery,
 * gossip), and the sync protocol's frames and sessions. Moves bytes and typed messages; knows
 * nothing of storage.
 */
export * from './addresses.ts'
export * from './dial-diagnosis.ts'
export * from './handshake-log.ts'
export * from './identity.ts'
export * from './gossip-messages.ts'
export * from './gossip-relay.ts'
export * from './sync-frames.ts'
export * from './sync-session.ts'
export * from './mesh-transport.ts'
export * from './replication-transport.ts'
export * from './resync-session.ts'
export * from './private-network.ts'
export * from './membership.ts'
export * from './overlay.ts'
export * from './link-monitor.ts'
