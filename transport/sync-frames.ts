import { deflateRawSync, inflateRawSync } from 'node:zlib'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import {
  CodecError,
  isValidNamespace,
  isValidNodeId,
  readBoundedUint,
  readBytes,
  readString,
  readVersionVector,
  writeVersionVector,
  type VersionVector,
} from '../crdt/index.ts'

/**
 * Frames of the sync protocol `/meshsync/sync/1.0.0` (documented in docs/sync-protocol.md).
 * Every frame travels length-prefixed (varint) and starts with its type byte.
 */
export const SYNC_PROTOCOL = '/meshsync/sync/1.0.0'
/** Full refresh of one namespace: RESYNC_REQUEST, answered by SNAPSHOT frames and DONE. */
export const RESYNC_PROTOCOL = '/meshsync/resync/1.0.0'
export const SYNC_PROTOCOL_VERSION = 1

/** Largest frame on the wire, and largest a CHANGES frame may inflate to. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024
export const MAX_INFLATED_BYTES = 32 * 1024 * 1024
/** Most change records in one CHANGES frame. */
export const MAX_RECORDS_PER_FRAME = 10_000

export const FRAME_HELLO = 1
export const FRAME_CHANGES = 2
export const FRAME_DONE = 3
export const FRAME_ACK = 4
export const FRAME_SNAPSHOT = 5
export const FRAME_SNAPSHOT_END = 6
export const FRAME_RESYNC_REQUEST = 7

/** Most entries of a HELLO's GC extension (members, namespaces). */
export const MAX_GC_ENTRIES = 4096

/** What a node observed another node to have: its vector, and when (observer's clock, ms). */
export interface AckEntry {
  readonly nodeId: string
  readonly vv: VersionVector
  readonly at: number
}

/** Tombstone-GC knowledge a node shares at the start of each session (docs/tombstone-gc.md). */
export interface GcHello {
  /** Latest observation of every member the sender knows (itself included). */
  readonly acks: readonly AckEntry[]
  /** Per namespace, the merged vectors of the tombstones the sender purged (its horizon). */
  readonly horizon: Readonly<Record<string, VersionVector>>
}

/** First frame each side sends: who it is and what it has. */
export interface HelloFrame {
  readonly type: typeof FRAME_HELLO
  readonly version: number
  readonly nodeId: string
  /** Node version vector of the sender. */
  readonly vv: VersionVector
  /** Optional extension (protocol 1.1): acks and purge horizons for tombstone GC. */
  readonly gc?: GcHello
}

/** A batch of encoded change records (deflated on the wire). */
export interface ChangesFrame {
  readonly type: typeof FRAME_CHANGES
  readonly records: readonly Uint8Array[]
}

/** The sender has sent everything the peer lacked; carries its vector at that point. */
export interface DoneFrame {
  readonly type: typeof FRAME_DONE
  readonly vv: VersionVector
}

/** Sent after the peer's DONE once everything it sent is applied; carries the new vector. */
export interface AckFrame {
  readonly type: typeof FRAME_ACK
  readonly vv: VersionVector
}

/** A batch of encoded entity snapshots (deflated on the wire): state instead of history. */
export interface SnapshotFrame {
  readonly type: typeof FRAME_SNAPSHOT
  readonly records: readonly Uint8Array[]
}

/** The snapshot is complete: the entities sent hold every change `vv` covers. */
export interface SnapshotEndFrame {
  readonly type: typeof FRAME_SNAPSHOT_END
  readonly vv: VersionVector
}

/** Asks a peer for every entity of a namespace. */
export interface ResyncRequestFrame {
  readonly type: typeof FRAME_RESYNC_REQUEST
  readonly ns: string
}

export type SyncFrame = HelloFrame | ChangesFrame | DoneFrame | AckFrame | SnapshotFrame | SnapshotEndFrame | ResyncRequestFrame

/** Encodes a frame (without its length prefix). */
export function encodeFrame(frame: SyncFrame): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeUint8(e, frame.type)
  switch (frame.type) {
    case FRAME_HELLO:
      encoding.writeVarUint(e, frame.version)
      encoding.writeVarString(e, frame.nodeId)
      writeVersionVector(e, frame.vv)
      if (frame.gc) writeGcHello(e, frame.gc)
      break
    case FRAME_CHANGES:
    case FRAME_SNAPSHOT: {
      const body = encoding.createEncoder()
      encoding.writeVarUint(body, frame.records.length)
      for (const record of frame.records) encoding.writeVarUint8Array(body, record)
      encoding.writeVarUint8Array(e, deflateRawSync(encoding.toUint8Array(body), { level: 1 }))
      break
    }
    case FRAME_DONE:
    case FRAME_ACK:
    case FRAME_SNAPSHOT_END:
      writeVersionVector(e, frame.vv)
      break
    case FRAME_RESYNC_REQUEST:
      encoding.writeVarString(e, frame.ns)
      break
  }
  return encoding.toUint8Array(e)
}

/**
 * Decodes and validates a frame. Anything malformed (unknown type, truncation, oversized or
 * undecompressable payload, bad names, trailing bytes) throws {@link CodecError}.
 * Change records inside a CHANGES frame are returned as bytes; the caller decodes each.
 */
export function decodeFrame(bytes: Uint8Array): SyncFrame {
  if (bytes.length === 0) throw new CodecError('empty frame')
  if (bytes.length > MAX_FRAME_BYTES) throw new CodecError('frame too large')
  const d = decoding.createDecoder(bytes)
  const type = decoding.readUint8(d)
  let frame: SyncFrame
  switch (type) {
    case FRAME_HELLO: {
      const version = readBoundedUint(d, 0xffff, 'protocol version')
      const nodeId = readString(d, 'node id', 64)
      if (!isValidNodeId(nodeId)) throw new CodecError('invalid node id')
      const vv = readVersionVector(d)
      frame = decoding.hasContent(d) ? { type, version, nodeId, vv, gc: readGcHello(d) } : { type, version, nodeId, vv }
      break
    }
    case FRAME_CHANGES:
    case FRAME_SNAPSHOT: {
      const packed = readBytes(d, 'changes payload', MAX_FRAME_BYTES)
      let inflated: Uint8Array
      try {
        inflated = inflateRawSync(packed, { maxOutputLength: MAX_INFLATED_BYTES })
      } catch (cause) {
        throw new CodecError('changes payload does not inflate', { cause })
      }
      const body = decoding.createDecoder(inflated)
      const count = readBoundedUint(body, MAX_RECORDS_PER_FRAME, 'record count')
      const records: Uint8Array[] = []
      for (let i = 0; i < count; i++) records.push(readBytes(body, 'change record', MAX_INFLATED_BYTES))
      if (decoding.hasContent(body)) throw new CodecError('trailing bytes in changes payload')
      frame = { type, records }
      break
    }
    case FRAME_DONE:
    case FRAME_ACK:
    case FRAME_SNAPSHOT_END:
      frame = { type, vv: readVersionVector(d) }
      break
    case FRAME_RESYNC_REQUEST: {
      const ns = readString(d, 'namespace', 64)
      if (!isValidNamespace(ns)) throw new CodecError('invalid namespace')
      frame = { type, ns }
      break
    }
    default:
      throw new CodecError(`unknown frame type ${type}`)
  }
  if (decoding.hasContent(d)) throw new CodecError('trailing bytes after frame')
  return frame
}

function writeGcHello(e: encoding.Encoder, gc: GcHello): void {
  encoding.writeVarUint(e, gc.acks.length)
  for (const a of gc.acks) {
    encoding.writeVarString(e, a.nodeId)
    writeVersionVector(e, a.vv)
    encoding.writeVarUint(e, Math.max(0, Math.floor(a.at)))
  }
  const namespaces = Object.keys(gc.horizon)
  encoding.writeVarUint(e, namespaces.length)
  for (const ns of namespaces) {
    encoding.writeVarString(e, ns)
    writeVersionVector(e, gc.horizon[ns] ?? {})
  }
}

function readGcHello(d: decoding.Decoder): GcHello {
  const acks: AckEntry[] = []
  const nAcks = readBoundedUint(d, MAX_GC_ENTRIES, 'ack count')
  for (let i = 0; i < nAcks; i++) {
    const nodeId = readString(d, 'ack node id', 64)
    if (!isValidNodeId(nodeId)) throw new CodecError('invalid ack node id')
    acks.push({ nodeId, vv: readVersionVector(d), at: readBoundedUint(d, Number.MAX_SAFE_INTEGER, 'ack time') })
  }
  const horizon: Record<string, VersionVector> = {}
  const nNs = readBoundedUint(d, MAX_GC_ENTRIES, 'horizon count')
  for (let i = 0; i < nNs; i++) {
    const ns = readString(d, 'horizon namespace', 64)
    if (!isValidNamespace(ns)) throw new CodecError('invalid horizon namespace')
    horizon[ns] = readVersionVector(d)
  }
  return { acks, horizon }
}
