/** libp2p side of meshsync: identity now; node factory, discovery, gossip and sync follow. */
export * from './identity.ts'
