import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { CodecError, encodeReusing, isValidNodeId, readBoundedUint, readBytes, readString, type Dot } from '../crdt/index.ts'

/**
 * The gossipsub topic every node publishes its changes on: messages unsigned (StrictNoSign), the
 * sender authenticated per hop by Noise. See docs/sync-protocol.md.
 */
export const CHANGES_TOPIC = 'meshsync/changes/2'
/**
 * The topic of nodes before 0.2: every message signed by its publisher (StrictSign). A node with
 * `p2p.signGossip` on speaks this one instead, to gossip with such nodes during an upgrade.
 */
export const SIGNED_CHANGES_TOPIC = 'meshsync/changes/1'

/** The changes topic for a signature policy. */
export function changesTopic(signed: boolean): string {
  return signed ? SIGNED_CHANGES_TOPIC : CHANGES_TOPIC
}
/**
 * The topic of the relay's messages (see transport/gossip-relay.ts): which nodes a node's changes
 * gossip reaches directly, and the heads of the changes a node did not pass on. One per signature
 * policy, as the changes topics.
 */
export function linksTopic(signed: boolean): string {
  return signed ? 'meshsync/links/1' : 'meshsync/links/2'
}

/** Most nodes a links message lists, and most origins a heads message names. */
export const MAX_LINKS = 4096

export const RELAY_LINKS = 1
export const RELAY_HEADS = 2

/**
 * `links`: the node ids a node's changes gossip reaches directly (its changes topic's
 * subscribers). `heads`: per origin, the highest seq of the changes a node received and did not
 * pass on to its mesh.
 */
export type RelayMessage =
  | { readonly type: typeof RELAY_LINKS; readonly origin: string; readonly reaches: readonly string[] }
  | { readonly type: typeof RELAY_HEADS; readonly heads: readonly Dot[] }

/** A node id (validated); throws {@link CodecError} otherwise. */
function readNodeId(d: decoding.Decoder, what: string): string {
  const id = readString(d, what, 64)
  if (!isValidNodeId(id)) throw new CodecError(`invalid ${what}`)
  return id
}

/** A dot as ANNOUNCE and heads carry it: origin node id, then seq (at least 1). */
function writeDot(e: encoding.Encoder, dot: Dot): void {
  encoding.writeVarString(e, dot.origin)
  encoding.writeVarUint(e, dot.seq)
}

function readDot(d: decoding.Decoder): Dot {
  const origin = readNodeId(d, 'origin')
  const seq = readBoundedUint(d, Number.MAX_SAFE_INTEGER, 'seq')
  if (seq < 1) throw new CodecError('invalid seq')
  return { origin, seq }
}

export function encodeRelayMessage(message: RelayMessage): Uint8Array {
  return encodeReusing((e) => {
    encoding.writeUint8(e, message.type)
    if (message.type === RELAY_LINKS) {
      encoding.writeVarString(e, message.origin)
      encoding.writeVarUint(e, message.reaches.length)
      for (const nodeId of message.reaches) encoding.writeVarString(e, nodeId)
    } else {
      encoding.writeVarUint(e, message.heads.length)
      for (const dot of message.heads) writeDot(e, dot)
    }
  })
}

/** Decodes a relay message; throws {@link CodecError} on anything malformed. */
export function decodeRelayMessage(bytes: Uint8Array): RelayMessage {
  if (bytes.length === 0) throw new CodecError('empty relay message')
  const type = bytes[0]
  const d = decoding.createDecoder(bytes.subarray(1))
  let message: RelayMessage
  if (type === RELAY_LINKS) {
    const origin = readNodeId(d, 'origin')
    const count = readBoundedUint(d, MAX_LINKS, 'node count')
    const reaches: string[] = []
    for (let i = 0; i < count; i++) reaches.push(readNodeId(d, 'node id'))
    message = { type, origin, reaches }
  } else if (type === RELAY_HEADS) {
    const count = readBoundedUint(d, MAX_LINKS, 'head count')
    const heads: Dot[] = []
    for (let i = 0; i < count; i++) heads.push(readDot(d))
    message = { type, heads }
  } else {
    throw new CodecError(`unknown relay message type ${String(type)}`)
  }
  if (decoding.hasContent(d)) throw new CodecError('trailing bytes after relay message')
  return message
}

/** Largest gossip message; a change record larger than this is announced instead of carried. */
export const MAX_GOSSIP_BYTES = 256 * 1024

/** Most change records one gossip message carries. */
export const MAX_GOSSIP_RECORDS = 4096

export const GOSSIP_CHANGES = 1
export const GOSSIP_ANNOUNCE = 2

/**
 * A gossip message: the change records of one commit (one signature for all of them), or the dot
 * of one record too large to carry.
 */
export type GossipMessage =
  | { readonly type: typeof GOSSIP_CHANGES; readonly records: readonly Uint8Array[] }
  | { readonly type: typeof GOSSIP_ANNOUNCE; readonly dot: Dot }

/** Bytes a record adds to a GOSSIP_CHANGES message (its length prefix included). */
export function gossipRecordCost(record: Uint8Array): number {
  return record.length + 5
}

export function encodeGossip(message: GossipMessage): Uint8Array {
  return encodeReusing((e) => {
    encoding.writeUint8(e, message.type)
    if (message.type === GOSSIP_CHANGES) {
      encoding.writeVarUint(e, message.records.length)
      for (const record of message.records) encoding.writeVarUint8Array(e, record)
    } else {
      writeDot(e, message.dot)
    }
  })
}

/** Decodes a gossip message; throws {@link CodecError} on anything malformed. */
export function decodeGossip(bytes: Uint8Array): GossipMessage {
  if (bytes.length === 0) throw new CodecError('empty gossip message')
  if (bytes.length > MAX_GOSSIP_BYTES) throw new CodecError('gossip message too large')
  const type = bytes[0]
  if (type === GOSSIP_CHANGES) {
    const d = decoding.createDecoder(bytes.subarray(1))
    const count = readBoundedUint(d, MAX_GOSSIP_RECORDS, 'record count')
    if (count === 0) throw new CodecError('empty change batch')
    const records: Uint8Array[] = []
    for (let i = 0; i < count; i++) records.push(readBytes(d, 'change record', MAX_GOSSIP_BYTES))
    if (decoding.hasContent(d)) throw new CodecError('trailing bytes after change batch')
    return { type, records }
  }
  if (type === GOSSIP_ANNOUNCE) {
    const d = decoding.createDecoder(bytes.subarray(1))
    const dot = readDot(d)
    if (decoding.hasContent(d)) throw new CodecError('invalid announce')
    return { type, dot }
  }
  throw new CodecError(`unknown gossip message type ${String(type)}`)
}
