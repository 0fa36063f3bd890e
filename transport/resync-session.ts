import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { CodecError, decodeEntitySnapshot, type EntitySnapshot } from '../crdt/index.ts'
import { decodeFrame, encodeFrame, FRAME_DONE, FRAME_RESYNC_REQUEST, FRAME_SNAPSHOT, MAX_FRAME_BYTES, type SyncFrame } from './sync-frames.ts'
import { SyncProtocolError } from './sync-session.ts'

const TARGET_FRAME_BYTES = 1024 * 1024

interface Framed {
  read(): Promise<SyncFrame>
  write(frame: SyncFrame): Promise<void>
  bytesIn: number
}

function framed(stream: Stream, signal: AbortSignal | undefined, idleMs: number): Framed {
  const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
  const timeout = (): AbortSignal => (signal ? AbortSignal.any([signal, AbortSignal.timeout(idleMs)]) : AbortSignal.timeout(idleMs))
  const f: Framed = {
    bytesIn: 0,
    async read() {
      const bytes = (await lp.read({ signal: timeout() })).subarray()
      f.bytesIn += bytes.length
      try {
        return decodeFrame(bytes)
      } catch (cause) {
        throw new SyncProtocolError('malformed frame', { cause })
      }
    },
    async write(frame) {
      await lp.write(encodeFrame(frame), { signal: timeout() })
    },
  }
  return f
}

/**
 * Asks the peer on `stream` for every entity of `ns` and hands them over in batches (full
 * refresh). Entity snapshots that do not decode are dropped and counted.
 */
export async function requestNamespace(
  stream: Stream,
  ns: string,
  onEntities: (entities: readonly EntitySnapshot[]) => Promise<void>,
  options: { readonly signal?: AbortSignal; readonly idleTimeoutMs?: number } = {},
): Promise<{ entities: number; invalid: number; bytesIn: number }> {
  const io = framed(stream, options.signal, options.idleTimeoutMs ?? 30_000)
  let entities = 0
  let invalid = 0
  try {
    await io.write({ type: FRAME_RESYNC_REQUEST, ns })
    for (;;) {
      const frame = await io.read()
      if (frame.type === FRAME_DONE) break
      if (frame.type !== FRAME_SNAPSHOT) throw new SyncProtocolError('expected SNAPSHOT or DONE')
      const batch: EntitySnapshot[] = []
      for (const record of frame.records) {
        try {
          const e = decodeEntitySnapshot(record)
          if (e.ns === ns) batch.push(e)
          else invalid++
        } catch (error) {
          if (!(error instanceof CodecError)) throw error
          invalid++
        }
      }
      entities += batch.length
      if (batch.length > 0) await onEntities(batch)
    }
    await stream.close().catch(() => undefined)
    return { entities, invalid, bytesIn: io.bytesIn }
  } catch (error) {
    stream.abort(error instanceof Error ? error : new Error(String(error)))
    throw error
  }
}

/** Answers one RESYNC_REQUEST with the encoded entity snapshots `entitiesOf(ns)` yields. */
export async function serveNamespace(
  stream: Stream,
  entitiesOf: (ns: string) => AsyncIterable<Uint8Array>,
  options: { readonly signal?: AbortSignal; readonly idleTimeoutMs?: number } = {},
): Promise<{ ns: string; entities: number }> {
  const io = framed(stream, options.signal, options.idleTimeoutMs ?? 30_000)
  try {
    const request = await io.read()
    if (request.type !== FRAME_RESYNC_REQUEST) throw new SyncProtocolError('expected RESYNC_REQUEST')
    let sent = 0
    let batch: Uint8Array[] = []
    let size = 0
    for await (const record of entitiesOf(request.ns)) {
      batch.push(record)
      size += record.length
      sent++
      if (size >= TARGET_FRAME_BYTES || batch.length >= 2000) {
        await io.write({ type: FRAME_SNAPSHOT, records: batch })
        batch = []
        size = 0
      }
    }
    if (batch.length > 0) await io.write({ type: FRAME_SNAPSHOT, records: batch })
    await io.write({ type: FRAME_DONE, vv: {} })
    await stream.close().catch(() => undefined)
    return { ns: request.ns, entities: sent }
  } catch (error) {
    stream.abort(error instanceof Error ? error : new Error(String(error)))
    throw error
  }
}
