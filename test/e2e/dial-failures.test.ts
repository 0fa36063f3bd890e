import { spawn } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { codeOf, freePort, ok, peersOf, statusOf, type PeerRow } from '../helpers/cluster.ts'
import { meshsyncBin, repoRoot, startDaemon, stopAllDaemons, writeConfig, type DaemonHandle } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * A misconfigured node says so (docs/operations.md, Dial failures): a warning naming the address
 * and the likely cause, the same in `GET /v1/peers` and `meshsync peers`, and `POST /v1/peers`
 * answers with the cause's code.
 */

const tempDir = useTempDirs()

afterAll(async () => {
  await stopAllDaemons()
})

interface LogLine {
  level: number
  msg: string
  code?: string
  addr?: string
  remote?: string
}

/** The daemon's JSON log lines (stderr) at `level` or above. */
function logLines(d: DaemonHandle, level = 40): LogLine[] {
  return d
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.level >= level)
}

const seedOf = (d: DaemonHandle): string => (d.info.listen[0] as string).replace(/\/p2p\/.*$/, '')

async function failingRow(d: DaemonHandle, addr: string, code: string, attempts = 1): Promise<PeerRow> {
  return waitFor(
    async () => {
      const row = (await peersOf(d)).find((p) => p.failing?.addr === addr)
      return row?.failing?.error === code && row.failing.attempts >= attempts ? row : undefined
    },
    { timeout: 30_000, message: `${addr} failing with ${code} (${attempts}+ attempts) in /v1/peers` },
  )
}

function cliPeers(d: DaemonHandle): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [meshsyncBin, 'peers', '--data-dir', d.dataDir], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
    child.once('error', reject)
    child.once('close', () => resolve(out))
  })
}

describe('a node with another cluster key', () => {
  it('warns once naming the address and the cause, shows it in /v1/peers and `meshsync peers`, and the other node warns too', { timeout: 120_000 }, async () => {
    const a = await startDaemon()
    const seed = seedOf(a)
    const named = a.info.listen[0] as string
    const b = await startDaemon({ args: ['--bootstrap', seed, named] })
    // Redialed with backoff: several attempts, one warning per address.
    const row = await failingRow(b, seed, 'PEER_KEY_MISMATCH', 3)
    expect(row).toMatchObject({ peerId: null, connected: false, addrs: [seed] })
    expect(row.failing?.message).toContain(`cannot connect to ${seed}: cluster key mismatch`)
    const namedRow = await failingRow(b, named, 'PEER_KEY_MISMATCH', 3)
    expect(namedRow.peerId).toBe(a.info.peerId)
    // Logged once the cause is confirmed (3 dials in a row), once per address.
    const warnings = await waitFor(() => {
      const w = logLines(b).filter((l) => l.code === 'PEER_KEY_MISMATCH')
      return w.length >= 2 ? w : undefined
    }, { timeout: 10_000, message: 'the two warnings' })
    expect(warnings.map((l) => [l.level, l.addr])).toEqual(
      expect.arrayContaining([
        [40, seed],
        [40, named],
      ]),
    )
    expect(warnings).toHaveLength(2)
    expect(warnings[0]?.msg).toContain('cluster key mismatch')
    // The node it dials hears of it too: one warning for the host, however many connections.
    const inbound = await waitFor(() => {
      const w = logLines(a).filter((l) => l.code === 'PEER_KEY_MISMATCH')
      return w.length > 0 ? w : undefined
    }, { timeout: 10_000, message: "a's warning" })
    expect(inbound).toHaveLength(1)
    expect(inbound[0]?.remote).toMatch(/^127\.0\.0\.1:\d+$/)
    expect((await statusOf(b)).peers).toBe(0)
    const printed = await cliPeers(b)
    expect(printed).toContain(`fail ${seed} PEER_KEY_MISMATCH (`)
    expect(printed).toContain(`fail ${named} PEER_KEY_MISMATCH (`)
    // Nothing at error level on either side.
    expect(logLines(a, 50)).toEqual([])
    expect(logLines(b, 50)).toEqual([])
  })
})

describe('a bootstrap address that answers later', () => {
  it('is listed while nothing listens there (no warning: a node that is down), then leaves the list once its node starts', { timeout: 120_000 }, async () => {
    const port = await freePort()
    const first = await startDaemon({ listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    const key = join(first.dataDir, 'cluster.key')
    await first.stop()
    const seed = `/ip4/127.0.0.1/tcp/${port}`
    const b = await startDaemon({ args: ['--cluster-key', key, '--bootstrap', seed] })
    await failingRow(b, seed, 'PEER_UNREACHABLE', 3)
    expect(logLines(b)).toEqual([])
    const again = await startDaemon({ dataDir: first.dataDir, listen: [seed] })
    await waitFor(async () => (await peersOf(b)).some((p) => p.peerId === again.info.peerId && p.connected), { timeout: 30_000, message: 'b connected to the seed' })
    await waitFor(async () => (await peersOf(b)).every((p) => p.failing === null), { timeout: 10_000, message: 'the seed left the failing list' })
  })
})

describe('POST /v1/peers names the cause', () => {
  it('the API port, a server that is not meshsync, another cluster key, a peer whose allowlist refuses this node', { timeout: 120_000 }, async () => {
    const [a, stranger] = await Promise.all([startDaemon(), startDaemon()])
    const guardedDir = await tempDir('meshsync-e2e-')
    await writeConfig(guardedDir, { p2p: { allowPeers: [stranger.info.peerId] } })
    const [guarded, friend] = await Promise.all([
      startDaemon({ dataDir: guardedDir, args: ['--cluster-key', join(a.dataDir, 'cluster.key')] }),
      startDaemon({ args: ['--cluster-key', join(a.dataDir, 'cluster.key')] }),
    ])

    const api = new URL(a.info.api.url)
    const toApi = await a.sock('POST', '/v1/peers', { multiaddr: `/ip4/127.0.0.1/tcp/${api.port}` })
    expect(toApi.status).toBe(502)
    expect(codeOf(toApi)).toBe('NOT_MESHSYNC')
    expect(toApi.text).toContain('HTTP/1.1 400 Bad Request')
    expect(toApi.text).toContain('the API port?')

    const garbage: Server = createServer((s) => {
      s.on('error', () => undefined)
      s.resume() // reads (and drops) what the daemon sends, so that its close ends the socket
      s.end('hello, this is not meshsync\n')
    })
    await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve))
    try {
      const res = await a.sock('POST', '/v1/peers', { multiaddr: `/ip4/127.0.0.1/tcp/${(garbage.address() as { port: number }).port}` })
      expect(res.status).toBe(502)
      expect(codeOf(res)).toBe('NOT_MESHSYNC')
      expect(res.text).toContain('hello, this is not meshsync')
    } finally {
      await new Promise((resolve) => garbage.close(resolve))
    }

    const key = await a.sock('POST', '/v1/peers', { multiaddr: stranger.info.listen[0] })
    expect(key.status).toBe(502)
    expect(codeOf(key)).toBe('PEER_KEY_MISMATCH')

    const refused = await a.sock('POST', '/v1/peers', { multiaddr: guarded.info.listen[0] })
    expect(refused.status).toBe(502)
    expect(codeOf(refused)).toBe('PEER_REFUSED')
    expect(refused.text).toContain('p2p.allowPeers')
    expect((await peersOf(a)).filter((p) => p.connected)).toEqual([])

    // A dial that works still answers 200; failed dials are warnings, not errors, in the log.
    expect(ok(await a.sock<{ peerId: string }>('POST', '/v1/peers', { multiaddr: friend.info.listen[0] })).peerId).toBe(friend.info.peerId)
    expect(logLines(a, 50)).toEqual([])
    expect(logLines(a).map((l) => l.code)).toEqual(expect.arrayContaining(['NOT_MESHSYNC', 'PEER_KEY_MISMATCH', 'PEER_REFUSED']))
  })
})
