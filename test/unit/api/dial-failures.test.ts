import { pino, type Logger } from 'pino'
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { DialFailures } from '../../../daemon/dial-failures.ts'
import type { PeerView } from '../../../daemon/replication/peer-book.ts'
import { DialError, type HandshakeObservation } from '../../../transport/index.ts'

function capture(): { lines: { level: number; msg: string; addr?: string; code?: string; remote?: string }[]; logger: Logger } {
  const lines: { level: number; msg: string }[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as { level: number; msg: string })
      done()
    },
  })
  return { lines, logger: pino({ level: 'debug' }, sink) }
}
/** pino writes through a stream: let it flush. */
const flushed = (): Promise<void> => new Promise((r) => setImmediate(r))

const SEED = '/ip4/10.0.0.1/tcp/4718'
const PEER = '12D3KooWSBTZ4xgJ1BWG4HHMh4Jb9Cvv4LGr64CdLpb1A5EKgpep'
const NAMED = `/ip4/10.0.0.2/tcp/4718/p2p/${PEER}`

describe('failing bootstrap addresses', () => {
  it('lists an address after 3 failed dials in a row, warns once per cause confirmed so, counts the attempts, and says when it answers', async () => {
    const { lines, logger } = capture()
    const f = new DialFailures(logger, [SEED, NAMED])
    const mismatch = (t: number): void => f.failed(new DialError('PEER_KEY_MISMATCH', SEED, `cannot connect to ${SEED}: cluster key mismatch`), t)
    mismatch(1000)
    mismatch(1001)
    expect(f.list()).toEqual([]) // two failures prove little
    for (let i = 2; i < 5; i++) mismatch(1000 + i)
    f.failed(new DialError('PEER_KEY_MISMATCH', '/ip4/10.9.9.9/tcp/1', 'an operator dial, not a bootstrap address'))
    f.failed(new Error('not a dial error'))
    expect(f.list()).toEqual([
      { addr: SEED, error: 'PEER_KEY_MISMATCH', message: `cannot connect to ${SEED}: cluster key mismatch`, since: new Date(1000).toISOString(), lastAt: new Date(1004).toISOString(), attempts: 5 },
    ])
    // Another cause: listed at once (the address keeps failing), logged once it is confirmed
    // (a node that is down is info, not a warning).
    f.failed(new DialError('PEER_UNREACHABLE', SEED, 'down'), 2000)
    expect(f.list()[0]).toMatchObject({ error: 'PEER_UNREACHABLE', attempts: 1, since: new Date(2000).toISOString() })
    f.failed(new DialError('PEER_UNREACHABLE', SEED, 'down'), 2001)
    f.failed(new DialError('PEER_UNREACHABLE', SEED, 'down'), 2002)
    f.answered(SEED, PEER)
    f.answered(SEED, PEER)
    expect(f.list()).toEqual([])
    // One failure cut short by a restart, then an answer: nothing listed, nothing logged.
    f.failed(new DialError('PEER_REFUSED', NAMED, 'closed at once'), 3000)
    f.answered(NAMED, PEER)
    await flushed()
    expect(lines.map((l) => [l.level, l.addr, l.code])).toEqual([
      [40, SEED, 'PEER_KEY_MISMATCH'],
      [30, SEED, 'PEER_UNREACHABLE'],
      [30, SEED, undefined],
    ])
    expect(lines[0]?.msg).toContain('cluster key mismatch')
    expect(lines[2]?.msg).toContain('answered after 8 failed dials')
  })

  it('shows a failing address on its known peer, or as a row of its own', () => {
    const f = new DialFailures(pino({ level: 'silent' }), [SEED, NAMED])
    for (let i = 0; i < 3; i++) f.failed(new DialError('NOT_MESHSYNC', SEED, 'm1'), 1000 + i)
    for (let i = 0; i < 3; i++) f.failed(new DialError('PEER_REFUSED', NAMED, 'm2'), 2000 + i)
    const view: PeerView = { peerId: PEER, nodeId: null, addrs: [NAMED], connected: false, lastSyncAt: null, behind: null, bytesIn: 0, bytesOut: 0, gossipBytesIn: 0, gossipBytesOut: 0, invalidInputs: 0 }
    const rows = f.rows([view])
    expect(rows).toHaveLength(2)
    expect(rows[0]).toMatchObject({ peerId: PEER, failing: { addr: NAMED, error: 'PEER_REFUSED', attempts: 3 } })
    expect(rows[1]).toMatchObject({ peerId: null, addrs: [SEED], connected: false, failing: { addr: SEED, error: 'NOT_MESHSYNC', message: 'm1' } })
    // Not a known peer yet: the named address gets a row with the id it names.
    expect(f.rows([]).map((r) => r.peerId)).toEqual([null, PEER])
  })

  it('logs an inbound handshake failure once per host an hour', async () => {
    const { lines, logger } = capture()
    const f = new DialFailures(logger, [])
    const o = (remote: string, raw: Uint8Array): HandshakeObservation => ({ remote, direction: 'inbound', at: 0, raw, rawBytes: raw.length, firstChunk: raw.length, decrypted: new Uint8Array(4) })
    const noise = Uint8Array.from({ length: 52 }, (_, i) => (i * 97 + 13) & 0xff)
    f.inboundMismatch(o('10.0.0.5:40000', noise), 0)
    f.inboundMismatch(o('10.0.0.5:40001', noise), 1000) // another port of the same host
    f.inboundMismatch(o('10.0.0.6:40000', new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n')), 1000)
    f.inboundMismatch(o('10.0.0.5:40002', noise), 3_600_001)
    await flushed()
    expect(lines.map((l) => [l.level, l.remote, l.code])).toEqual([
      [40, '10.0.0.5:40000', 'PEER_KEY_MISMATCH'],
      [30, '10.0.0.6:40000', 'NOT_MESHSYNC'],
      [40, '10.0.0.5:40002', 'PEER_KEY_MISMATCH'],
    ])
  })
})
