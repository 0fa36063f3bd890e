import type { Stream } from '@libp2p/interface'
import type { ChangeRecord, Dot } from '../crdt/index.ts'

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
