/**
 * Whether replication runs, and the signal that ends its sessions, streams and dials when it
 * stops: owned by the replicator, read by its parts.
 */
export interface ReplicationRun {
  readonly running: boolean
  readonly signal: AbortSignal
}
