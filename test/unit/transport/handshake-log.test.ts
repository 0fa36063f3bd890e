import { describe, expect, it } from 'vitest'
import { diagnoseDial, DialError, firstLine, HandshakeLog, hostPortOf, keyVerdict, looksLikeText, MULTISTREAM_HEADER } from '../../../transport/index.ts'
import { multiaddr } from '@multiformats/multiaddr'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const random = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (seed * 131 + i * 977 + ((i * i) % 251)) & 0xff)

describe('handshake log', () => {
  it('tells a matching key (the multistream header) from a mismatch, and waits while it cannot tell', () => {
    expect(keyVerdict({ decrypted: MULTISTREAM_HEADER })).toBe('match')
    expect(keyVerdict({ decrypted: MULTISTREAM_HEADER.subarray(0, 5) })).toBe('unknown')
    expect(keyVerdict({ decrypted: new Uint8Array(0) })).toBe('unknown')
    const wrong = MULTISTREAM_HEADER.slice()
    wrong[3] = (wrong[3] as number) ^ 1
    expect(keyVerdict({ decrypted: wrong.subarray(0, 4) })).toBe('mismatch')
  })

  it('reads text as text, and random bytes as not', () => {
    expect(looksLikeText(enc('HTTP/1.1 400 Bad Request\r\n'))).toBe(true)
    expect(looksLikeText(enc('SSH-2.0-OpenSSH_9.6\r\n'))).toBe(true)
    expect(looksLikeText(new Uint8Array(0))).toBe(false)
    expect(looksLikeText(random(24, 1))).toBe(false)
    expect(firstLine(enc('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n'))).toBe('HTTP/1.1 400 Bad Request')
    expect(firstLine(enc('x'.repeat(100)))).toHaveLength(60)
  })

  it('takes host and port from a multiaddr', () => {
    expect(hostPortOf(multiaddr('/ip4/10.0.0.1/tcp/4718/p2p/12D3KooWSBTZ4xgJ1BWG4HHMh4Jb9Cvv4LGr64CdLpb1A5EKgpep'))).toBe('10.0.0.1:4718')
    expect(hostPortOf(multiaddr('/dns4/node-1.example/tcp/4718'))).toBe('node-1.example:4718')
    expect(hostPortOf(multiaddr('/ip4/10.0.0.1/udp/4718'))).toBeUndefined()
  })

  it('records raw and decrypted bytes, forgets what the protector hands on again, and reports an inbound mismatch once', () => {
    const mismatches: string[] = []
    const log = new HandshakeLog({ onInboundMismatch: (o) => mismatches.push(o.remote) })
    const rec = log.begin('10.0.0.2:5000', 'inbound', 1000)
    rec.raw(random(52, 2)) // a nonce and 28 bytes in one chunk
    rec.rewind(24) // the protector read the nonce; the other 28 come again
    rec.raw(random(28, 3))
    expect(rec.decrypted(random(10, 4))).toBe(false) // garbage: a verdict, no more bytes needed
    expect(rec.decrypted(random(10, 5))).toBe(false)
    expect(mismatches).toEqual(['10.0.0.2:5000'])
    const outbound = log.begin('10.0.0.3:4718', 'outbound', 1000)
    outbound.raw(random(24, 6))
    expect(outbound.decrypted(MULTISTREAM_HEADER.subarray(0, 8))).toBe(true) // cannot tell yet
    expect(outbound.decrypted(MULTISTREAM_HEADER.subarray(8))).toBe(false) // the keys match
    const o = log.findOutbound(['10.0.0.3:4718'], 1000)
    expect(o).toMatchObject({ rawBytes: 24, firstChunk: 24 })
    expect(keyVerdict(o as NonNullable<typeof o>)).toBe('match')
    expect(log.findOutbound(['10.0.0.2:5000'], 0)).toBeUndefined() // inbound ones are not a dial's
  })

  it('finds the newest outbound handshake since a time, by address or else by port, and keeps a bounded number', () => {
    const log = new HandshakeLog({ capacity: 3 })
    log.begin('10.0.0.1:4718', 'outbound', 100).raw(new Uint8Array(1))
    log.begin('10.0.0.9:4718', 'outbound', 200).raw(new Uint8Array(2))
    log.begin('10.0.0.1:4718', 'outbound', 300).raw(new Uint8Array(3))
    expect(log.findOutbound(['10.0.0.1:4718'], 0)?.rawBytes).toBe(3)
    expect(log.findOutbound(['10.0.0.1:4718'], 301)).toBeUndefined()
    expect(log.findOutbound(['node-1.example:4718'], 150)?.rawBytes).toBe(3) // the newest on that port
    expect(log.findOutbound(['node-1.example:4719'], 0)).toBeUndefined()
    for (let i = 0; i < 5; i++) log.begin(`10.0.1.${i}:1`, 'outbound', 400)
    expect(log.findOutbound(['10.0.0.1:4718'], 0)).toBeUndefined()
  })
})

describe('dial diagnosis without a handshake', () => {
  const target = '/ip4/10.0.0.1/tcp/4718'
  it('names the cause from the error alone when no connection was made', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:4718'), { code: 'ECONNREFUSED' })
    expect(diagnoseDial(refused, { target }).code).toBe('PEER_UNREACHABLE')
    expect(diagnoseDial(new AggregateError([refused], 'All promises were rejected'), { target }).code).toBe('PEER_UNREACHABLE')
    expect(diagnoseDial(new DOMException('The operation was aborted due to timeout', 'TimeoutError'), { target }).code).toBe('PEER_UNREACHABLE')
    expect(diagnoseDial(new Error('The multiaddr connection is blocked by gater.denyOutboundEncryptedConnection'), { target }).code).toBe('PEER_NOT_ALLOWED')
    // A connection was made and its upgrade timed out: not "unreachable", though no handshake was seen.
    const upgrade = Object.assign(new Error('The operation was aborted due to timeout'), { name: 'EncryptionFailedError' })
    expect(diagnoseDial(upgrade, { target }).code).toBe('DIAL_FAILED')
    expect(diagnoseDial(new Error('something new'), { target })).toMatchObject({ code: 'DIAL_FAILED', message: `cannot connect to ${target}: failed: Error: something new` })
    const known = new DialError('NOT_MESHSYNC', target, 'said so')
    expect(diagnoseDial(known, { target })).toBe(known)
  })

  it('names the cause from the handshake when there was one', () => {
    const h = (raw: Uint8Array, firstChunk: number, decrypted = new Uint8Array(0)) => ({ remote: '10.0.0.1:4718', direction: 'outbound' as const, at: 0, raw, rawBytes: raw.length, firstChunk, decrypted })
    const eof = new Error('Unexpected EOF - stream closed while reading 0/24 bytes')
    const timeout = new Error('The operation was aborted due to timeout')
    expect(diagnoseDial(eof, { target, handshake: h(new Uint8Array(0), -1) }).code).toBe('PEER_REFUSED')
    expect(diagnoseDial(timeout, { target, handshake: h(new Uint8Array(0), -1) }).code).toBe('PEER_NO_ANSWER')
    expect(diagnoseDial(eof, { target, handshake: h(enc('HTTP/1.1 400 Bad Request\r\n\r\n'), 28) }).message).toContain('"HTTP/1.1 400 Bad Request" (an HTTP server: the API port?')
    expect(diagnoseDial(eof, { target, handshake: h(random(200, 7).subarray(0, 64), 200) }).code).toBe('NOT_MESHSYNC')
    expect(diagnoseDial(eof, { target, handshake: h(random(10, 8), 10) }).code).toBe('NOT_MESHSYNC')
    expect(diagnoseDial(new Error('read ECONNRESET'), { target, handshake: h(random(24, 9), 24) }).code).toBe('PEER_KEY_MISMATCH')
    expect(diagnoseDial(timeout, { target, handshake: h(random(24, 9), 24) }).code).toBe('PEER_KEY_MISMATCH')
    expect(diagnoseDial(eof, { target, handshake: h(random(24, 9), 24, MULTISTREAM_HEADER), afterUpgrade: true }).code).toBe('PEER_REFUSED')
    // A refused TCP connect is this dial's: an earlier handshake to the address says nothing of it.
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:4718'), { code: 'ECONNREFUSED' })
    expect(diagnoseDial(refused, { target, handshake: h(random(24, 9), 24, MULTISTREAM_HEADER) }).code).toBe('PEER_UNREACHABLE')
  })
})
