import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import {
  CodecError,
  decodeChange,
  decodeEntitySnapshot,
  MeshsyncError,
  type ChangeRecord,
  type EntitySnapshot,
  type VersionVector,
} from '../crdt/index.ts'
import {
  decodeFrame,
  encodeFrame,
  FRAME_CHANGES,
  FRAME_ACK,
  FRAME_DONE,
  FRAME_HELLO,
  FRAME_SNAPSHOT,
  FRAME_SNAPSHOT_END,
  MAX_FRAME_BYTES,
  SYNC_PROTOCOL_VERSION,
  type GcHello,
  type HelloFrame,
  type SyncFrame,
} from './sync-frames.ts'

/** The other side of a session, as identified by its connection and its HELLO. */
export interface SyncPeer {
  readonly peerId: string
  readonly nodeId: string
}

/** What a node sends a peer: change records (history), or entity states then their vector. */
export type OutgoingBatch =
  | { readonly kind: 'changes'; readonly records: readonly Uint8Array[] }
  | { readonly kind: 'snapshot'; readonly entities: readonly Uint8Array[] }
  | { readonly kind: 'snapshot-end'; readonly vv: VersionVector }

/**
 * What a sync session needs from the node: its vector, what a peer lacks, and places to put what
 * it receives. The daemon's replicator implements it.
 */
export interface SyncSource {
  readonly nodeId: string
  versionVector(): VersionVector
  /**
   * What a node with vector `theirs` lacks, in batches: encoded change records, or (when history
   * costs more than state, or is no longer all here) encoded entity snapshots and then the
   * snapshot's vector, followed by the records after it.
   */
  outgoing(theirs: VersionVector, signal: AbortSignal): AsyncIterable<OutgoingBatch>
  /** Changes received from `peer`, decoded and validated; resolves once they are handled. */
  receiveChanges(changes: readonly ChangeRecord[], peer: SyncPeer): Promise<void>
  /** Entity snapshots received from `peer`, decoded and validated; resolves once merged. */
  receiveSnapshot(entities: readonly EntitySnapshot[], peer: SyncPeer): Promise<void>
  /** The peer's snapshot is complete up to `vv`. */
  completeSnapshot(vv: VersionVector, peer: SyncPeer): Promise<void>
  /**
   * Tombstone-GC knowledge to send in HELLO to `peer` (optional): what it may lack of it
   * (docs/tombstone-gc.md). The peer is the connection's; its HELLO is not read yet.
   */
  gcHello?(peer: SyncPeer): GcHello
  /** Sees the peer's HELLO before anything is exchanged; throwing ends the session. */
  acceptHello?(hello: HelloFrame, peer: SyncPeer): Promise<void> | void
}

/** What one session did. */
export interface SyncSessionStats {
  readonly peer: SyncPeer
  /** The peer's vector from its ACK: everything it has, including what this session brought. */
  readonly theirVv: VersionVector
  readonly sentRecords: number
  readonly receivedRecords: number
  /** Records (changes or entity snapshots) in the peer's frames that did not decode (dropped). */
  readonly invalidRecords: number
  readonly bytesIn: number
  readonly bytesOut: number
  /** The tombstone-GC part of the HELLO this side sent: the peer has read it, as the session succeeded. */
  readonly gcSent?: GcHello
}

/** The peer broke the protocol (bad frame, wrong order, wrong identity). */
export class SyncProtocolError extends MeshsyncError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SYNC_PROTOCOL', message, options)
    this.name = 'SyncProtocolError'
  }
}

/** Largest CHANGES frame a sender builds before compression (well under the frame limit). */
const TARGET_FRAME_BYTES = 1024 * 1024

/**
 * Runs one anti-entropy session on `stream` (either side may have opened it; the protocol is
 * symmetric): both send HELLO with their node vector, then each streams exactly the change
 * records the other lacks and ends with DONE. Cost is proportional to the difference.
 */
export async function runSyncSession(
  stream: Stream,
  source: SyncSource,
  options: { readonly expectedNodeId: string; readonly remotePeerId: string; readonly signal?: AbortSignal; readonly idleTimeoutMs?: number },
): Promise<SyncSessionStats> {
  const idle = options.idleTimeoutMs ?? 30_000
  const controller = new AbortController()
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal
  const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
  let bytesIn = 0
  let bytesOut = 0
  const write = async (frame: SyncFrame): Promise<void> => {
    const bytes = encodeFrame(frame)
    bytesOut += bytes.length
    await lp.write(bytes, { signal: AbortSignal.any([signal, AbortSignal.timeout(idle)]) })
  }
  const read = async (): Promise<SyncFrame> => {
    let bytes: Uint8Array
    try {
      bytes = (await lp.read({ signal: AbortSignal.any([signal, AbortSignal.timeout(idle)]) })).subarray()
    } catch (cause) {
      if (cause instanceof Error && /length/i.test(cause.name + cause.message)) throw new SyncProtocolError('oversized frame', { cause })
      throw cause
    }
    bytesIn += bytes.length
    try {
      return decodeFrame(bytes)
    } catch (cause) {
      throw new SyncProtocolError('malformed frame', { cause })
    }
  }

  try {
    const gc = source.gcHello?.({ peerId: options.remotePeerId, nodeId: options.expectedNodeId })
    await write({ type: FRAME_HELLO, version: SYNC_PROTOCOL_VERSION, nodeId: source.nodeId, vv: source.versionVector(), ...(gc && { gc }) })
    const hello = await read()
    if (hello.type !== FRAME_HELLO) throw new SyncProtocolError('expected HELLO')
    if (hello.version !== SYNC_PROTOCOL_VERSION) throw new SyncProtocolError(`unsupported protocol version ${hello.version}`)
    if (hello.nodeId !== options.expectedNodeId) throw new SyncProtocolError('HELLO node id does not match the peer id')
    const peer: SyncPeer = { peerId: options.remotePeerId, nodeId: hello.nodeId }
    await source.acceptHello?.(hello, peer)

    const sending = (async () => {
      let sent = 0
      for await (const batch of source.outgoing(hello.vv, signal)) {
        if (batch.kind === 'snapshot-end') {
          await write({ type: FRAME_SNAPSHOT_END, vv: batch.vv })
          continue
        }
        const type = batch.kind === 'changes' ? FRAME_CHANGES : FRAME_SNAPSHOT
        let frame: Uint8Array[] = []
        let size = 0
        for (const record of batch.kind === 'changes' ? batch.records : batch.entities) {
          if (frame.length > 0 && (size + record.length > TARGET_FRAME_BYTES || frame.length >= 5000)) {
            await write({ type, records: frame })
            frame = []
            size = 0
          }
          frame.push(record)
          size += record.length
          sent++
        }
        if (frame.length > 0) await write({ type, records: frame })
      }
      await write({ type: FRAME_DONE, vv: source.versionVector() })
      return sent
    })()

    // The session ends when each side has the other's DONE (all sent) and ACK (all applied), so
    // that a session started right after this one sees the effects of this one.
    const receiving = (async () => {
      let received = 0
      let invalid = 0
      let done = false
      let ack: VersionVector | undefined
      while (!done || ack === undefined) {
        const frame = await read()
        if (frame.type === FRAME_ACK) {
          if (ack !== undefined) throw new SyncProtocolError('second ACK')
          ack = frame.vv
          continue
        }
        if (done) throw new SyncProtocolError('frame after DONE')
        if (frame.type === FRAME_DONE) {
          done = true
          await write({ type: FRAME_ACK, vv: source.versionVector() })
          continue
        }
        if (frame.type === FRAME_SNAPSHOT_END) {
          await source.completeSnapshot(frame.vv, peer)
          continue
        }
        if (frame.type === FRAME_SNAPSHOT) {
          const entities = decodeAll(frame.records, decodeEntitySnapshot)
          invalid += frame.records.length - entities.length
          received += entities.length
          if (entities.length > 0) await source.receiveSnapshot(entities, peer)
          continue
        }
        if (frame.type !== FRAME_CHANGES) throw new SyncProtocolError('unexpected frame')
        const changes = decodeAll(frame.records, decodeChange)
        invalid += frame.records.length - changes.length
        received += changes.length
        if (changes.length > 0) await source.receiveChanges(changes, peer)
      }
      return { received, invalid, theirVv: ack }
    })()

    const [sent, got] = await Promise.all([sending, receiving]).catch((error: unknown) => {
      controller.abort(error)
      throw error
    })
    await stream.close({ signal: AbortSignal.timeout(idle) }).catch(() => stream.abort(new Error('close timed out')))
    return {
      peer,
      theirVv: got.theirVv,
      sentRecords: sent,
      receivedRecords: got.received,
      invalidRecords: got.invalid,
      bytesIn,
      bytesOut,
      ...(gc && { gcSent: gc }),
    }
  } catch (error) {
    stream.abort(error instanceof Error ? error : new Error(String(error)))
    throw error
  }
}

/** Decodes each record; the ones that do not decode (CodecError) are left out. */
function decodeAll<T>(records: readonly Uint8Array[], decode: (bytes: Uint8Array) => T): T[] {
  const out: T[] = []
  for (const record of records) {
    try {
      out.push(decode(record))
    } catch (error) {
      if (!(error instanceof CodecError)) throw error
    }
  }
  return out
}
