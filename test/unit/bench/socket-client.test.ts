import fc from 'fast-check'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer, type Server as NetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { HttpWireError, ResponseReader } from '../../../scripts/bench/http1-connection.ts'
import { SocketClient } from '../../../scripts/bench/socket-client.ts'

function response(status: number, body: string, extra = ''): string {
  return `HTTP/1.1 ${status} X\r\ncontent-type: application/json\r\n${extra}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

describe('ResponseReader', () => {
  it('reads the same responses however the bytes are split (seeded)', () => {
    const bodyArb = fc.string({ unit: 'binary', maxLength: 3000 })
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(200, 201, 404, 503), bodyArb), { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 20 }), (responses, cuts) => {
        const wire = Buffer.from(responses.map(([status, body]) => response(status, body)).join(''))
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b)
        const reader = new ResponseReader()
        const read: { status: number; text: string }[] = []
        let from = 0
        for (const to of [...points, wire.length]) {
          read.push(...reader.push(wire.subarray(from, to)).map((r) => r.response))
          from = to
        }
        expect(read).toEqual(responses.map(([status, text]) => ({ status, text })))
        expect(reader.pendingBytes).toBe(0)
      }),
      { seed: 20261127, numRuns: 300 },
    )
  })

  it('refuses what it cannot frame instead of guessing', () => {
    const chunked = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
    expect(() => new ResponseReader().push(Buffer.from(chunked))).toThrow(/transfer-encoding chunked/)
    expect(() => new ResponseReader().push(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'))).toThrow(/without content-length/)
    expect(() => new ResponseReader().push(Buffer.from('SSH-2.0-x\r\n\r\n'))).toThrow(HttpWireError)
    expect(() => new ResponseReader().push(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n'))).toThrow(/bad content-length/)
    expect(() => new ResponseReader().push(Buffer.alloc(17 * 1024, 'a'))).toThrow(/head longer/)
    // 204 has no body, with or without a length.
    expect(new ResponseReader().push(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'))[0]?.response).toEqual({ status: 204, text: '' })
  })

  it('says when the server closes the connection after a response', () => {
    const [r] = new ResponseReader().push(Buffer.from(response(200, '{}', 'connection: close\r\n')))
    expect(r?.close).toBe(true)
  })
})

describe('SocketClient', () => {
  let dir: string
  let server: Server | NetServer | undefined
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'socket-client-'))
  })
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
    server = undefined
    await rm(dir, { recursive: true, force: true })
  })

  async function listen(s: Server | NetServer): Promise<string> {
    server = s
    const path = join(dir, 'api.sock')
    await new Promise<void>((resolve) => s.listen(path, resolve))
    return path
  }

  it('talks to node:http: methods, paths, bodies, JSON and text, at most maxSockets connections', async () => {
    const sockets = new Set<unknown>()
    let inFlight = 0
    let most = 0
    const path = await listen(
      createServer((req, res) => {
        sockets.add(req.socket)
        most = Math.max(most, ++inFlight)
        const chunks: Buffer[] = []
        req.on('data', (c: Buffer) => chunks.push(c))
        req.on('end', () => {
          setTimeout(() => {
            inFlight--
            // With a length, as the daemon's replies (fastify sets it for every JSON or text body).
            const reply = (status: number, type: string, text: string): void =>
              void res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) }).end(text)
            if (req.url === '/text') return reply(200, 'text/plain', 'plain ✓')
            const echoed = { method: req.method, url: req.url, type: req.headers['content-type'] ?? null, body: Buffer.concat(chunks).toString('utf8') }
            reply(req.url === '/missing' ? 404 : 200, 'application/json', JSON.stringify(echoed))
          }, 2)
        })
      }),
    )
    const client = new SocketClient(path, 3)
    try {
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => client.send('PUT', `/e/${i}`, JSON.stringify({ v: `é${i}` }))))
      replies.forEach((r, i) => expect(r).toEqual({ status: 200, body: { method: 'PUT', url: `/e/${i}`, type: 'application/json', body: JSON.stringify({ v: `é${i}` }) } }))
      expect(most).toBe(3)
      expect(sockets.size).toBe(3)
      expect(await client.send('GET', '/text')).toEqual({ status: 200, body: 'plain ✓' })
      expect(await client.expect('GET', '/x', undefined)).toMatchObject({ method: 'GET', type: null, body: '' })
      await expect(client.expect('GET', '/missing', undefined)).rejects.toThrow('GET /missing: HTTP 404')
    } finally {
      client.close()
    }
  })

  it('a connection the server drops fails its request only; the next request gets a new connection', async () => {
    let n = 0
    const path = await listen(
      createNetServer((socket) => {
        socket.on('data', () => {
          if (n++ === 0) socket.destroy()
          else socket.write(response(200, '{"ok":true}'))
        })
      }),
    )
    const client = new SocketClient(path, 1)
    try {
      await expect(client.send('GET', '/a')).rejects.toThrow(/closed by the server/)
      expect(await client.send('GET', '/b')).toEqual({ status: 200, body: { ok: true } })
    } finally {
      client.close()
    }
  })

  it('a socket that is not there is an error, and close() refuses waiting requests', async () => {
    const missing = new SocketClient(join(dir, 'nothing.sock'), 1)
    await expect(missing.send('GET', '/')).rejects.toThrow(/ENOENT/)
    missing.close()

    const path = await listen(createNetServer(() => undefined)) // accepts, never answers
    const client = new SocketClient(path, 1)
    const first = client.send('GET', '/slow')
    const second = client.send('GET', '/queued')
    client.close()
    await expect(first).rejects.toThrow(/closed by the client/)
    await expect(second).rejects.toThrow(/closed by the client/)
  })
})
