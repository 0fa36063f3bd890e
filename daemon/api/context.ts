import type { BackupService } from '../backup/service.ts'
import type { PeerRow } from '../dial-failures.ts'
import type { EntityStore } from '../store/entity-store.ts'

/** What the API routes need from the daemon. */
export interface ApiContext {
  readonly store: EntityStore
  readonly nodeId: string
  readonly peerId: string
  readonly startedAt: number
  /** Full multiaddrs this node listens on. */
  listen(): readonly string[]
  /** Known peers and failing bootstrap addresses (docs/api.md, `GET /v1/peers`). */
  peers(): readonly PeerRow[]
  /** The gossip topic this node speaks (by its signature policy) and how many peers listen on it. */
  gossip(): { readonly topic: string; readonly signed: boolean; readonly peers: number }
  /** Dials a peer by multiaddr (ending in `/p2p/<peerId>`); resolves with its peer id. */
  dial(multiaddr: string): Promise<string>
  /** Prometheus exposition of the daemon's metrics. */
  metrics(): Promise<{ contentType: string; body: string }>
  /** Full refresh of a namespace from a peer (the first connected one when absent). */
  resync(ns: string, from?: string): Promise<{ from: string; entities: number; removed: number }>
  /** Backups of this node (absent: the routes answer NO_BACKUP_TARGET). */
  readonly backups?: BackupService
}
