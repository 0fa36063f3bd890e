import { createServer as createHttpServer } from 'node:http'
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { DialError, generateClusterKey, generateIdentityKey, identityFromKey, MeshTransport, type DialFailureCode, type HandshakeObservation } from '../../transport/index.ts'
import { startRawPeer } from '../helpers/raw-peer.ts'

// Each cause of a failed dial, made for real (docs/operations.md, Dial failures): the error
// libp2p gives and the bytes the other end sent are what the diagnosis reads.

const stops: (() => unknown)[] = []
afterEach(async () => {
  await Promise.all(stops.splice(0).map((stop) => stop()))
})

async function transport(clusterKey: Uint8Array, allowPeers?: string[]): Promise<MeshTransport> {
  const t = new MeshTransport({
    privateKey: identityFromKey(await generateIdentityKey()).privateKey,
    clusterKey,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    mdns: false,
    ...(allowPeers && { allowPeers }),
  })
  await t.start()
  stops.push(() => t.stop())
  return t
}

/** A TCP server on loopback that treats each connection with `onConnection`; its address. */
async function tcpServer(onConnection: (socket: Socket) => void): Promise<string> {
  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined)
    onConnection(socket)
  })
  const sockets = new Set<Socket>()
  server.on('connection', (s) => sockets.add(s))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  stops.push(() => {
    for (const s of sockets) s.destroy()
    return new Promise((resolve) => server.close(resolve))
  })
  return `/ip4/127.0.0.1/tcp/${(server.address() as { port: number }).port}`
}

/** The DialError a dial fails with (it must fail). */
async function failure(dial: Promise<unknown>): Promise<DialError> {
  const error = await dial.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!(error instanceof DialError)) throw new Error(`expected a DialError, got ${error === undefined ? 'a connection' : String(error)}`)
  return error
}

const withoutPeerId = (addr: string): string => addr.replace(/\/p2p\/.*$/, '')

describe('a failed dial names its cause', () => {
  it('another cluster key, at a full address or a seed address; the listener hears of it, and matching keys connect', async () => {
    const key = generateClusterKey()
    const a = await transport(key)
    const stranger = await transport(generateClusterKey())
    const friend = await transport(key)
    const inbound: HandshakeObservation[] = []
    a.on('handshake:mismatch', (o) => inbound.push(o))
    const failed: DialError[] = []
    stranger.on('dial:failed', (e) => failed.push(e))
    const addr = a.listenAddrs()[0] as string
    for (const target of [addr, withoutPeerId(addr)]) {
      const e = await failure(stranger.dial(target))
      expect(e.code).toBe<DialFailureCode>('PEER_KEY_MISMATCH')
      expect(e.target).toBe(target)
      expect(e.message).toContain(`cannot connect to ${target}: cluster key mismatch`)
    }
    expect(failed.map((e) => e.code)).toEqual(['PEER_KEY_MISMATCH', 'PEER_KEY_MISMATCH'])
    expect(inbound.length).toBeGreaterThanOrEqual(2)
    expect(inbound.every((o) => o.remote.startsWith('127.0.0.1:'))).toBe(true)
    const seen = inbound.length
    const succeeded: string[] = []
    friend.on('dial:succeeded', ({ peerId }) => succeeded.push(peerId))
    expect(await friend.dial(withoutPeerId(addr))).toBe(a.peerId.toString())
    expect(succeeded).toEqual([a.peerId.toString()])
    expect(inbound).toHaveLength(seen)
  })

  it('a dial that joins one already under way (the overlay or the bootstrap dialing the same peer) names the cause too', async () => {
    const a = await transport(generateClusterKey())
    const stranger = await transport(generateClusterKey())
    const addr = a.listenAddrs()[0] as string
    let dialing = true
    const background = (async () => {
      while (dialing) await stranger.dial(addr).catch(() => undefined)
    })()
    try {
      for (let i = 0; i < 2; i++) {
        await new Promise((r) => setTimeout(r, 300))
        expect((await failure(stranger.dial(addr))).code).toBe('PEER_KEY_MISMATCH')
      }
    } finally {
      dialing = false
      await background
    }
  })

  it('an HTTP server (the API port), a text banner, binary bytes: not a meshsync p2p port', async () => {
    const dialer = await transport(generateClusterKey())
    const http = createHttpServer((_req, res) => res.end('hi'))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    stops.push(() => new Promise((resolve) => http.close(resolve)))
    const httpAddr = `/ip4/127.0.0.1/tcp/${(http.address() as { port: number }).port}`
    const e = await failure(dialer.dial(httpAddr))
    expect(e.code).toBe('NOT_MESHSYNC')
    expect(e.message).toContain('it answered "HTTP/1.1 400 Bad Request" (an HTTP server: the API port?')

    const banner = await tcpServer((s) => s.write('SSH-2.0-OpenSSH_9.6\r\n'))
    expect(await failure(dialer.dial(banner, { signal: AbortSignal.timeout(1500) }))).toMatchObject({ code: 'NOT_MESHSYNC', message: expect.stringContaining('"SSH-2.0-OpenSSH_9.6"') })

    const binary = await tcpServer((s) => s.write(Uint8Array.from({ length: 200 }, (_, i) => (i * 151 + 7) & 0xff)))
    expect(await failure(dialer.dial(binary))).toMatchObject({ code: 'NOT_MESHSYNC', message: expect.stringContaining('200 bytes at once') })
  })

  it('a port that closes at once, one that says nothing, and one where nothing listens', async () => {
    const dialer = await transport(generateClusterKey())
    const closer = await tcpServer((s) => s.destroy())
    expect((await failure(dialer.dial(closer))).code).toBe('PEER_REFUSED')
    const silent = await tcpServer(() => undefined)
    expect((await failure(dialer.dial(silent, { signal: AbortSignal.timeout(1500) }))).code).toBe('PEER_NO_ANSWER')
    // A port just closed: nothing listens there.
    const gone = await tcpServer(() => undefined)
    await (stops.pop() as () => Promise<void>)()
    expect((await failure(dialer.dial(gone))).message).toMatch(/unreachable: nothing accepts connections there \(ECONNREFUSED\)/)
  })

  it("the peer's allowlist, this node's allowlist, another peer id, this node's own address", async () => {
    const key = generateClusterKey()
    const a = await transport(key)
    const guarded = await transport(key, ['12D3KooWSBTZ4xgJ1BWG4HHMh4Jb9Cvv4LGr64CdLpb1A5EKgpep'])
    const e = await failure(a.dial(guarded.listenAddrs()[0] as string))
    expect(e.code).toBe('PEER_REFUSED')
    expect(e.message).toContain('p2p.allowPeers')
    expect((await failure(guarded.dial(a.listenAddrs()[0] as string))).code).toBe('PEER_NOT_ALLOWED')
    const other = await transport(key)
    const someoneElse = identityFromKey(await generateIdentityKey()).peerId.toString()
    const w = await failure(other.dial(`${withoutPeerId(a.listenAddrs()[0] as string)}/p2p/${someoneElse}`))
    expect(w.code).toBe('WRONG_PEER_ID')
    expect(w.message).toContain(`the node there is ${a.peerId.toString()}`)
    expect((await failure(a.dial(a.listenAddrs()[0] as string))).message).toContain("this node's own address")
  })

  it('a peer that holds the key but handles none of the probe protocols still connects', async () => {
    const key = generateClusterKey()
    const raw = await startRawPeer(key)
    stops.push(() => raw.node.stop())
    const a = await transport(key)
    expect(await a.dial(raw.node.getMultiaddrs()[0]?.toString() as string)).toBe(raw.node.peerId.toString())
  })
})
