import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { generateClusterKey, generateIdentityKey, identityFromKey, MeshTransport, OverlayFullError, type MeshTransportInit } from '../../transport/index.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * A member that comes back (restarted, or a partition healed) announces itself, and the members
 * that backed off dialing it while it was gone dial it on hearing that, not when their backoff
 * runs out (docs/sync-protocol.md, Membership and the overlay).
 */

const started: MeshTransport[] = []
afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.stop()))
})

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

async function startTransport(clusterKey: Uint8Array, extra: Partial<MeshTransportInit> = {}): Promise<MeshTransport> {
  const t = new MeshTransport({ privateKey: identityFromKey(await generateIdentityKey()).privateKey, clusterKey, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, ...extra })
  await t.start()
  started.push(t)
  return t
}

describe('dials and the overlay', () => {
  it('an explicit dial is made even when the overlay has its peers; an automatic one (onlyIfNeeded) is refused', { timeout: 60_000 }, async () => {
    const clusterKey = generateClusterKey()
    const a = await startTransport(clusterKey, { minConnections: 1, maxConnections: 4 })
    const [b, c, d] = await Promise.all([startTransport(clusterKey), startTransport(clusterKey), startTransport(clusterKey)])
    await a.dial(b.listenAddrs()[0] as string)
    await a.dial(c.listenAddrs()[0] as string)
    expect(a.connectedPeers().sort()).toEqual([b.peerId.toString(), c.peerId.toString()].sort())
    await expect(a.dial(d.listenAddrs()[0] as string, { onlyIfNeeded: true })).rejects.toThrow(OverlayFullError)
    // A peer connected already is no new neighbour: that dial is made.
    await expect(a.dial(b.listenAddrs()[0] as string, { onlyIfNeeded: true })).resolves.toBe(b.peerId.toString())
    expect(a.connectedPeers()).not.toContain(d.peerId.toString())
  })
})

describe('overlay heal', () => {
  it('a member that restarts is dialed by the members that backed off as soon as its announcement reaches them', { timeout: 60_000 }, async () => {
    const clusterKey = generateClusterKey()
    const start = async (privateKey: MeshTransportInit['privateKey'], extra: Partial<MeshTransportInit> = {}): Promise<MeshTransport> => {
      const t = new MeshTransport({ privateKey, clusterKey, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, ...extra })
      await t.start()
      started.push(t)
      return t
    }
    const a = await start(identityFromKey(await generateIdentityKey()).privateKey)
    const b = await start(identityFromKey(await generateIdentityKey()).privateKey)
    const cKey = identityFromKey(await generateIdentityKey()).privateKey
    const port = await freePort()
    // c keeps one connection and never dials another (nor probes): whatever connects a and c
    // again after the restart is a's dial.
    const cInit = { listen: [`/ip4/127.0.0.1/tcp/${port}`], minConnections: 1, maxConnections: 1 }
    let c = await start(cKey, cInit)
    const cId = c.peerId.toString()
    await b.dial(a.listenAddrs()[0] as string)
    await c.dial(a.listenAddrs()[0] as string)
    await waitFor(() => a.members().some((m) => m.peerId === cId && m.addrs.length > 0), { message: 'a knows c' })

    await c.stop()
    started.splice(started.indexOf(c), 1)
    // a (below its low watermark) dials c again and again, backing off more each time.
    const backoff = await waitFor(() => {
      const state = a.overlayBackoff(cId)
      return state !== undefined && state.failures >= 4 && !a.connectedPeers().includes(cId) ? state : undefined
    }, { timeout: 30_000, message: 'four failed dials of c' })

    c = await start(cKey, cInit)
    await c.dial(b.listenAddrs()[0] as string)
    // a forgets the backoff (and dials c) when c's announcement, relayed by b, reaches it: before
    // the backoff runs out, which is when a would dial c otherwise.
    const forgotten = await waitFor(
      () => {
        const state = a.overlayBackoff(cId)
        return state === undefined || state.failures < backoff.failures ? Date.now() : undefined
      },
      { timeout: 30_000, interval: 10, message: 'the backoff of c forgotten' },
    )
    expect(forgotten).toBeLessThan(backoff.dueAt)
    await waitFor(() => a.connectedPeers().includes(cId), { timeout: 30_000, message: 'a connected to c' })
  })
})
