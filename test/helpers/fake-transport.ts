import type { Stream } from '@libp2p/interface'
import { EventEmitter } from 'node:events'
import type { PublishedChange, RelayStats, ReplicationTransport, ReplicationTransportEvents, SyncStreamHandler } from '../../transport/index.ts'

/**
 * A transport for a replicator under test, with no network: it records what is published and
 * dialed, reports the peers a test declares connected, and emits the events a test raises
 * (`fake.emit('gossip', …)`). Streams cannot be opened: a session or a resync asked of it fails.
 */
export class FakeReplicationTransport extends EventEmitter<ReplicationTransportEvents> implements ReplicationTransport {
  readonly peerId: string
  /** The changes of each publish, by seq. */
  readonly published: number[][] = []
  /** performance.now() of each publish. */
  readonly publishedAt: number[] = []
  /** Targets dialed, in order. */
  readonly dialed: string[] = []
  /** Peers a sync stream was asked of, in order (each such session fails). */
  readonly syncOpened: string[] = []
  /** Peers hung up on, in order. */
  readonly hungUp: string[] = []
  /** The peers connectedPeers() reports. */
  connected: string[] = []
  /** The members members() reports (connected or not). */
  memberList: { peerId: string }[] = []
  /** The peers a publish reaches (default: none). */
  recipients: string[] = []
  syncHandler: SyncStreamHandler | undefined
  resyncHandler: SyncStreamHandler | undefined
  readonly relayStats: Readonly<RelayStats> = { forwarded: 0, withheld: 0 }

  constructor(peerId = '12D3KooWFakeTransport') {
    super()
    this.peerId = peerId
  }

  connectedPeers(): string[] {
    return [...this.connected]
  }

  members(): { peerId: string }[] {
    return [...this.memberList]
  }

  async dialableAddrs(): Promise<string[]> {
    return []
  }

  async dial(target: string): Promise<string> {
    this.dialed.push(target)
    throw new Error(`the fake transport dials nothing (${target})`)
  }

  async hangUp(peerId: string): Promise<void> {
    this.hungUp.push(peerId)
  }

  handleSync(handler: SyncStreamHandler): void {
    this.syncHandler = handler
  }

  handleResync(handler: SyncStreamHandler): void {
    this.resyncHandler = handler
  }

  async openSyncStream(peerId: string): Promise<Stream> {
    this.syncOpened.push(peerId)
    throw new Error(`the fake transport opens no streams (sync with ${peerId})`)
  }

  async openResyncStream(peerId: string): Promise<Stream> {
    throw new Error(`the fake transport opens no streams (resync from ${peerId})`)
  }

  async publishChanges(changes: readonly PublishedChange[]): Promise<{ recipients: string[]; bytesTo: Map<string, number> }> {
    this.published.push(changes.map((c) => c.change.seq))
    this.publishedAt.push(performance.now())
    const bytes = changes.reduce((sum, c) => sum + c.bytes.length, 0)
    return { recipients: [...this.recipients], bytesTo: new Map(this.recipients.map((p) => [p, bytes])) }
  }
}
