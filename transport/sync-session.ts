import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { CodecError, decodeChange, MeshsyncError, type ChangeRecord, type VersionVector } from '../crdt/index.ts'
import {
  decodeFrame,
  encodeFrame,
  FRAME_CHANGES,
  FRAME_ACK,
  FRAME_DONE,
  FRAME_HELLO,
  MAX_FRAME_BYTES,
  SYNC_PROTOCOL_VERSION,
  type SyncFrame,
} from './sync-frames.ts'

/** The other side of a session, as identified by its connection and its HELLO. */
export interface SyncPeer {
  readonly peerId: string
  readonly nodeId: string
}

/**
 * What a sync session needs from the node: its vector, the change records a peer lacks, and a
 * place to put the changes it receives. The daemon's replicator implements it.
 */
export interface SyncSource {
  readonly nodeId: string
  versionVector(): VersionVector
  /** Encoded change records that a node with vector `theirs` lacks, in batches. */
  missingChanges(theirs: VersionVector, signal: AbortSignal): AsyncIterable<readonly Uint8Array[]>
  /** Changes received from `peer`, decoded and validated; resolves once they are handled. */
  receiveChanges(changes: readonly ChangeRecord[], peer: SyncPeer): Promise<void>
}

/** What one session did. */
export interface SyncSessionStats {
  readonly peer: SyncPeer
  /** The peer's vector from its ACK: everything it has, including what this session brought. */
  readonly theirVv: VersionVector
  readonly sentRecords: number
  readonly receivedRecords: number
  /** Records in the peer's frames that did not decode (dropped). */
  readonly invalidRecords: number
  readonly bytesIn: number
  readonly bytesOut: number
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
    await write({ type: FRAME_HELLO, version: SYNC_PROTOCOL_VERSION, nodeId: source.nodeId, vv: source.versionVector() })
    const hello = await read()
    if (hello.type !== FRAME_HELLO) throw new SyncProtocolError('expected HELLO')
    if (hello.version !== SYNC_PROTOCOL_VERSION) throw new SyncProtocolError(`unsupported protocol version ${hello.version}`)
    if (hello.nodeId !== options.expectedNodeId) throw new SyncProtocolError('HELLO node id does not match the peer id')
    const peer: SyncPeer = { peerId: options.remotePeerId, nodeId: hello.nodeId }

    const sending = (async () => {
      let sent = 0
      for await (const batch of source.missingChanges(hello.vv, signal)) {
        let frame: Uint8Array[] = []
        let size = 0
        for (const record of batch) {
          if (frame.length > 0 && (size + record.length > TARGET_FRAME_BYTES || frame.length >= 5000)) {
            await write({ type: FRAME_CHANGES, records: frame })
            frame = []
            size = 0
          }
          frame.push(record)
          size += record.length
          sent++
        }
        if (frame.length > 0) await write({ type: FRAME_CHANGES, records: frame })
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
        if (frame.type !== FRAME_CHANGES) throw new SyncProtocolError('unexpected frame')
        const changes: ChangeRecord[] = []
        for (const record of frame.records) {
          try {
            changes.push(decodeChange(record))
          } catch (error) {
            if (!(error instanceof CodecError)) throw error
            invalid++
          }
        }
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
    }
  } catch (error) {
    stream.abort(error instanceof Error ? error : new Error(String(error)))
    throw error
  }
}
