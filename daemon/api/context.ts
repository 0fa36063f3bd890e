import type { EntityStore } from '../store/entity-store.ts'

/** A peer as /v1/peers shows it. */
export interface PeerInfo {
  readonly peerId: string
  readonly addrs: readonly string[]
  readonly connected: boolean
  readonly lastSyncAt: string | null
}

/** What the API routes need from the daemon. */
export interface ApiContext {
  readonly store: EntityStore
  readonly nodeId: string
  readonly peerId: string
  readonly startedAt: number
  /** Full multiaddrs this node listens on. */
  listen(): readonly string[]
  peers(): readonly PeerInfo[]
}
