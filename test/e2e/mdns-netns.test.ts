import { execFileSync, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { peersOf, put, statusOf, valueOf, waitPeerSynced } from '../helpers/cluster.ts'
import { startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon-process.ts'
import { makeTempDir, removeTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { isProcessAlive } from '../../daemon/process-alive.ts'
import { namespacesUnavailable } from '../../scripts/chaos/netns.ts'

/**
 * mDNS discovery between two daemons in two network namespaces joined by a bridge (docs/architecture.md, Membership and discovery:
 * discovery on the LAN): no bootstrap peer, mDNS on, each daemon listening on 0.0.0.0:4718 of its
 * own namespace. Everything lives in namespaces this test creates (the bridge too), so the host's
 * interfaces are never touched. The daemons are reached over their Unix sockets (the filesystem
 * is shared; their TCP API is on the namespace's loopback).
 */

const PREFIX = 'msync-'
const ns = { bridge: `${PREFIX}${process.pid}-br`, a: `${PREFIX}${process.pid}-a`, b: `${PREFIX}${process.pid}-b` }
const addrs = { a: '10.213.0.1', b: '10.213.0.2' }

const skip = namespacesUnavailable()
if (skip) console.warn(`mdns-netns: skipped: ${skip}`)

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Namespaces of earlier runs of this test whose process is gone (a crash or a kill). */
function removeLeftovers(): void {
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const match = /^msync-(\d+)-(a|b|br)$/.exec(name)
    if (!match || isProcessAlive(Number(match[1]))) continue
    // Daemons a crashed run left in it first, then the namespace.
    const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout ?? ''
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // already gone
      }
    }
    spawnSync('ip', ['netns', 'del', name])
  }
}


function teardown(): void {
  for (const name of [ns.a, ns.b, ns.bridge]) spawnSync('ip', ['netns', 'del', name])
}

/**
 * The bridge's namespace with bridge `br0`; per node a namespace whose `eth0` is a veth into the
 * bridge, an address in 10.213.0.0/24, loopback up, and a multicast route (there is no default
 * route, so without it sending to 224.0.0.251 fails with ENETUNREACH).
 */
function setup(): void {
  removeLeftovers()
  teardown()
  for (const name of Object.values(ns)) ip('netns', 'add', name)
  ip('-n', ns.bridge, 'link', 'set', 'lo', 'up')
  ip('-n', ns.bridge, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
  ip('-n', ns.bridge, 'link', 'set', 'br0', 'up')
  for (const node of ['a', 'b'] as const) {
    const port = `v${node}`
    // Made inside the bridge's namespace, the peer end moved straight into the node's.
    ip('-n', ns.bridge, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns[node])
    ip('-n', ns.bridge, 'link', 'set', port, 'master', 'br0')
    ip('-n', ns.bridge, 'link', 'set', port, 'up')
    ip('-n', ns[node], 'link', 'set', 'lo', 'up')
    ip('-n', ns[node], 'addr', 'add', `${addrs[node]}/24`, 'dev', 'eth0')
    ip('-n', ns[node], 'link', 'set', 'eth0', 'up')
    ip('-n', ns[node], 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
  }
}

describe('mDNS discovery across network namespaces', () => {
  beforeAll(() => {
    if (!skip) setup()
  })

  afterAll(async () => {
    await stopAllDaemons()
    if (!skip) teardown()
    await removeTempDirs()
  })

  it.skipIf(skip !== undefined)(`two daemons on one bridge find each other by mDNS and sync${skip ? ` (skipped: ${skip})` : ''}`, { timeout: 60_000 }, async () => {
    const start = async (node: 'a' | 'b', args: string[] = []): Promise<DaemonHandle> =>
      startDaemon({
        dataDir: await makeTempDir('msync-m-'),
        wrapper: ['ip', 'netns', 'exec', ns[node]],
        listen: ['/ip4/0.0.0.0/tcp/4718'],
        mdns: true,
        args,
      })
    const a = await start('a')
    const b = await start('b', ['--cluster-key', join(a.dataDir, 'cluster.key')])
    expect(a.info.listen).toContain(`/ip4/${addrs.a}/tcp/4718/p2p/${a.info.peerId}`)
    expect(b.info.listen).toContain(`/ip4/${addrs.b}/tcp/4718/p2p/${b.info.peerId}`)

    // No bootstrap, no dial: only mDNS can bring them together.
    const rowOnB = await waitPeerSynced(b, a.info.peerId, 30_000)
    const rowOnA = await waitPeerSynced(a, b.info.peerId, 30_000)
    expect(rowOnB.addrs.some((addr) => addr.startsWith(`/ip4/${addrs.a}/tcp/4718/`))).toBe(true)
    expect(rowOnA.nodeId).toBe(b.info.nodeId)

    await put(a, 'items', 'from-a', { by: 'a' })
    await put(b, 'items', 'from-b', { by: 'b' })
    await waitFor(async () => (await valueOf(b, 'items', 'from-a')) !== null && (await valueOf(a, 'items', 'from-b')) !== null, {
      timeout: 20_000,
      message: 'writes to cross the bridge',
    })
    expect(await valueOf(b, 'items', 'from-a')).toEqual({ by: 'a' })
    expect(await valueOf(a, 'items', 'from-b')).toEqual({ by: 'b' })
    const [sa, sb] = await Promise.all([statusOf(a), statusOf(b)])
    expect(sa.versionVector).toEqual(sb.versionVector)
    expect(sa.versionVector).toEqual({ [a.info.nodeId]: 1, [b.info.nodeId]: 1 })
    expect((await peersOf(a)).filter((p) => p.connected).map((p) => p.peerId)).toEqual([b.info.peerId])

    // a dies with kill -9 and comes back on its data dir: they find each other again and sync
    // what b wrote meanwhile.
    a.kill('SIGKILL')
    await a.exited
    await waitFor(async () => !(await peersOf(b)).some((p) => p.peerId === a.info.peerId && p.connected), { message: 'b to see a gone' })
    await put(b, 'items', 'while-a-was-down', { by: 'b' })
    const a2 = await startDaemon({ dataDir: a.dataDir, wrapper: ['ip', 'netns', 'exec', ns.a], listen: ['/ip4/0.0.0.0/tcp/4718'], mdns: true })
    expect(a2.info.peerId).toBe(a.info.peerId)
    await waitFor(async () => (await valueOf(a2, 'items', 'while-a-was-down')) !== null, { timeout: 30_000, message: 'a, restarted, to catch up' })
    expect((await statusOf(a2)).versionVector).toEqual({ [a.info.nodeId]: 1, [b.info.nodeId]: 2 })
  })
})
