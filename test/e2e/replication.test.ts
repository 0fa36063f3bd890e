import { mkdir } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import {
  assertConverged,
  codeOf,
  del,
  freePort,
  joinArgs,
  patch,
  peersOf,
  put,
  statusOf,
  valueOf,
  waitConverged,
  waitPeerSynced,
  type Value,
} from '../helpers/cluster.ts'
import { startDaemon, stopAllDaemons, writeConfig, type DaemonHandle, type StartDaemonOptions } from '../helpers/daemon-process.ts'
import { makeTempDir, removeTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * Replication between real daemon processes started through the CLI (docs/architecture.md, docs/cli.md): joining
 * a cluster by cluster key + bootstrap, convergence, kill -9 and catch-up, stable identity and
 * listen address, dialing on request, cluster-key isolation, pull-only namespaces.
 */

afterEach(async () => {
  // Daemons first (they hold files in the temp dirs), then the dirs; even when a test failed.
  await stopAllDaemons()
  await removeTempDirs()
})

/** Starts a daemon on a fresh temp dir (or the given one) and returns it with its start options. */
async function start(options: StartDaemonOptions = {}): Promise<{ d: DaemonHandle; options: StartDaemonOptions & { dataDir: string } }> {
  const dataDir = options.dataDir ?? (await makeTempDir('msync-r-'))
  const full = { ...options, dataDir }
  return { d: await startDaemon(full), options: full }
}

describe('replication between daemon processes', () => {
  it('three nodes converge; a node killed with SIGKILL restarts, catches up, and its acknowledged writes survive', { timeout: 120_000 }, async () => {
    const { d: a } = await start()
    const [{ d: b }, { d: c, options: cOptions }] = await Promise.all([start({ args: joinArgs(a) }), start({ args: joinArgs(a) })])
    const nodes = [a, b, c]
    const expected = new Map<string, Value | null>()

    // Writes on each of the three, through both listeners.
    await Promise.all(
      nodes.map(async (d, n) => {
        for (let i = 0; i < 5; i++) {
          const value = { node: n, i, tags: [`t${i}`], nested: { at: d.info.nodeId } }
          await put(d, 'items', `n${n}-${i}`, value, i % 2 === 0 ? 'tcp' : 'sock')
          expected.set(`items/n${n}-${i}`, value)
        }
        // Concurrent patches of different fields of one entity merge field by field.
        await patch(d, 'shared', 'doc', { [`field${n}`]: n }, 'tcp')
      }),
    )
    expected.set('shared/doc', { field0: 0, field1: 1, field2: 2 })
    const vv1 = await waitConverged(nodes, expected)
    expect(Object.keys(vv1).sort()).toEqual(nodes.map((d) => d.info.nodeId).sort())
    for (const d of nodes) expect((await statusOf(d)).entities).toBe(16)

    // c writes, is acknowledged, and dies at once: nothing is flushed or sent on the way out.
    const lastWords = { last: true, from: c.info.nodeId }
    await put(c, 'items', 'c-last', lastWords, 'tcp')
    c.kill('SIGKILL')
    expect(await c.exited).toEqual({ code: null, signal: 'SIGKILL' })

    // The other two go on writing, also to entities c made, and delete one of them.
    for (let i = 0; i < 5; i++) {
      const value = { after: 'kill', i }
      await put(i % 2 === 0 ? a : b, 'items', `later-${i}`, value, i % 2 === 0 ? 'sock' : 'tcp')
      expected.set(`items/later-${i}`, value)
    }
    await put(a, 'items', 'n2-0', { overwritten: 'by a' })
    expected.set('items/n2-0', { overwritten: 'by a' })
    await patch(b, 'items', 'n2-1', { i: 100, patchedBy: 'b' })
    expected.set('items/n2-1', { node: 2, i: 100, tags: ['t1'], nested: { at: c.info.nodeId }, patchedBy: 'b' })
    await del(a, 'items', 'n2-2')
    expected.set('items/n2-2', null)
    await waitConverged([a, b], expected)

    // Restarted on the same data dir with the same flags: same identity, catches up both ways.
    const c2 = await startDaemon(cOptions)
    expect(c2.info.peerId).toBe(c.info.peerId)
    expect(c2.info.nodeId).toBe(c.info.nodeId)
    expect(await valueOf(c2, 'items', 'c-last')).toEqual(lastWords)
    expected.set('items/c-last', lastWords)
    const vv2 = await waitConverged([a, b, c2], expected)
    expect(vv2[c.info.nodeId]).toBeGreaterThanOrEqual(7) // 5 puts, 1 patch, the last put
    for (const d of [a, b, c2]) expect((await statusOf(d)).entities).toBe(16 + 5 - 1 + 1)
  })

  it('a restarted daemon keeps its peer id and its fixed listen address', { timeout: 60_000 }, async () => {
    const port = await freePort()
    const listen = [`/ip4/127.0.0.1/tcp/${port}`]
    const { d: first, options } = await start({ listen })
    const addr = `/ip4/127.0.0.1/tcp/${port}/p2p/${first.info.peerId}`
    expect(first.info.listen).toContain(addr)
    expect((await statusOf(first)).listen).toContain(addr)

    // Clean stop, then kill -9: both times the same identity and address come back.
    expect(await first.stop()).toEqual({ code: 0, signal: null })
    const second = await startDaemon(options)
    expect(second.info.peerId).toBe(first.info.peerId)
    expect(second.info.nodeId).toBe(first.info.nodeId)
    expect(second.info.listen).toContain(addr)
    second.kill('SIGKILL')
    await second.exited
    const third = await startDaemon(options)
    expect(third.info.peerId).toBe(first.info.peerId)
    expect(third.info.listen).toContain(addr)
    expect((await statusOf(third, 'tcp')).peerId).toBe(first.info.peerId)
  })

  it('POST /v1/peers connects a daemon that has no bootstrap peer, and it syncs', { timeout: 60_000 }, async () => {
    const { d: a } = await start()
    const clusterKey = joinArgs(a).slice(0, 2) // same cluster, no --bootstrap
    const { d: e } = await start({ args: clusterKey })
    await put(a, 'items', 'from-a', { by: 'a' })
    await put(e, 'items', 'from-e', { by: 'e' }, 'tcp')
    // Alone so far: nothing dialed it, nothing it dialed.
    expect(await peersOf(e)).toEqual([])
    expect(await valueOf(a, 'items', 'from-e')).toBeNull()

    const res = await e.tcp<{ peerId: string; connected: boolean }>('POST', '/v1/peers', { multiaddr: a.info.listen[0] })
    expect(res.status).toBe(200)
    expect(res.json).toEqual({ peerId: a.info.peerId, connected: true })

    const row = await waitPeerSynced(e, a.info.peerId)
    expect(row.nodeId).toBe(a.info.nodeId)
    expect(Number.isNaN(Date.parse(row.lastSyncAt as string))).toBe(false)
    expect(row.addrs).toContain(a.info.listen[0])
    await waitConverged(
      [a, e],
      new Map([
        ['items/from-a', { by: 'a' }],
        ['items/from-e', { by: 'e' }],
      ]),
    )
    // The fast path works on the new link too.
    await put(a, 'items', 'after-dial', { n: 1 })
    await waitFor(async () => (await valueOf(e, 'items', 'after-dial')) !== null, { timeout: 20_000, message: 'a write after the dial to reach e' })
    expect((await statusOf(e)).peers).toBe(1)
  })

  it('--bootstrap with an address but no peer id: the daemon dials it until the peer answers, then syncs', { timeout: 60_000 }, async () => {
    const port = await freePort()
    const { d: first, options } = await start({ listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    const clusterKey = joinArgs(first).slice(0, 2)
    await put(first, 'items', 'before', { n: 0 })
    expect(await first.stop()).toEqual({ code: 0, signal: null })

    // Nobody at the address yet: it keeps trying (libp2p's bootstrap discovery would drop it).
    const { d: e } = await start({ args: [...clusterKey, '--bootstrap', `/ip4/127.0.0.1/tcp/${port}`] })
    await new Promise((r) => setTimeout(r, 1500))
    // No peer yet; the seed address may be listed as failing (nothing listens there yet).
    for (const row of await peersOf(e)) expect(row).toMatchObject({ peerId: null, connected: false, failing: { error: 'PEER_UNREACHABLE' } })

    const a = await startDaemon(options)
    const row = await waitPeerSynced(e, a.info.peerId)
    expect(row.nodeId).toBe(a.info.nodeId)
    await put(a, 'items', 'after', { n: 1 })
    await waitConverged(
      [a, e],
      new Map([
        ['items/before', { n: 0 }],
        ['items/after', { n: 1 }],
      ]),
    )
  })

  it('a daemon with another cluster key never connects and receives nothing', { timeout: 60_000 }, async () => {
    const { d: a } = await start()
    const [{ d: b }, { d: x }] = await Promise.all([
      start({ args: joinArgs(a) }),
      // Its own cluster key (made by its own init), but bootstrapped to the cluster.
      start({ args: ['--bootstrap', a.info.listen[0] as string] }),
    ])

    // A few seconds of writes on the cluster while x keeps trying (it redials its bootstrap peer).
    const expected = new Map<string, Value | null>()
    const until = Date.now() + 3000
    for (let i = 0; Date.now() < until; i++) {
      const value = { i }
      await put(i % 2 === 0 ? a : b, 'items', `k${i % 20}`, value, i % 2 === 0 ? 'sock' : 'tcp')
      expected.set(`items/k${i % 20}`, value)
    }
    await waitConverged([a, b], expected)

    // An explicit dial fails too, and says why.
    const dial = await x.sock('POST', '/v1/peers', { multiaddr: a.info.listen[0] })
    expect(dial.status).toBe(502)
    expect(codeOf(dial)).toBe('PEER_KEY_MISMATCH')

    const xStatus = await statusOf(x)
    expect(xStatus.versionVector).toEqual({})
    expect(xStatus.entities).toBe(0)
    expect(xStatus.peers).toBe(0)
    expect((await peersOf(x)).filter((p) => p.connected)).toEqual([])
    for (const d of [a, b]) {
      expect((await peersOf(d)).filter((p) => p.peerId === x.info.peerId && p.connected)).toEqual([])
      expect((await statusOf(d)).versionVector[x.info.nodeId]).toBeUndefined()
    }
    expect(await valueOf(x, 'items', 'k0')).toBeNull()
  })

  it('a pull-only namespace refuses local writes and takes the cluster\'s', { timeout: 60_000 }, async () => {
    const { d: a } = await start()
    const dataDir = await makeTempDir('msync-r-')
    await mkdir(dataDir, { recursive: true })
    await writeConfig(dataDir, { namespaces: { reports: { mode: 'pull-only' } } })
    const { d: p } = await start({ dataDir, args: joinArgs(a) })

    for (const via of ['tcp', 'sock'] as const) {
      const res = await p[via]('PUT', '/v1/ns/reports/entities/local', { x: 1 })
      expect(res.status).toBe(403)
      expect(codeOf(res)).toBe('READ_ONLY_NAMESPACE')
    }
    await put(a, 'reports', 'r1', { total: 42 })
    await patch(a, 'reports', 'r1', { currency: 'EUR' })
    await put(a, 'reports', 'r2', { total: 7 })
    // Other namespaces stay two-way on the pull-only node.
    await put(p, 'items', 'from-p', { by: 'p' })
    const vv = await waitConverged(
      [a, p],
      new Map([
        ['reports/r1', { total: 42, currency: 'EUR' }],
        ['reports/r2', { total: 7 }],
        ['reports/local', null],
        ['items/from-p', { by: 'p' }],
      ]),
    )
    expect(vv).toEqual({ [a.info.nodeId]: 3, [p.info.nodeId]: 1 })
    expect((await statusOf(p)).namespaces).toEqual({ reports: 2, items: 1 })
    // Still refused after replication brought the namespace in.
    expect(codeOf(await p.tcp('PATCH', '/v1/ns/reports/entities/r1', { total: 0 }))).toBe('READ_ONLY_NAMESPACE')
    expect(await assertConverged([a, p], new Map([['reports/r1', { total: 42, currency: 'EUR' }]]))).toEqual(vv)
  })

  it('p2p.signGossip: signing daemons gossip on the signed topic; a daemon on the default converges with them by anti-entropy', { timeout: 60_000 }, async () => {
    const config = (signGossip: boolean): object => ({ p2p: { signGossip, antiEntropyIntervalMs: 500 } })
    const dirs = await Promise.all([0, 1, 2].map(() => makeTempDir('msync-r-')))
    await Promise.all(dirs.map((dir, i) => writeConfig(dir, config(i < 2))))
    const { d: a } = await start({ dataDir: dirs[0] as string })
    const [{ d: b }, { d: c }] = await Promise.all([start({ dataDir: dirs[1] as string, args: joinArgs(a) }), start({ dataDir: dirs[2] as string, args: joinArgs(a) })])
    await waitFor(async () => (await statusOf(a)).gossip.peers === 1 && (await statusOf(b)).gossip.peers === 1, { timeout: 20_000 })
    expect((await statusOf(a)).gossip).toEqual({ topic: 'meshsync/changes/1', signed: true, peers: 1 })
    expect((await statusOf(c)).gossip).toEqual({ topic: 'meshsync/changes/2', signed: false, peers: 0 })
    await put(a, 'items', 'from-a', { by: 'a' })
    await put(c, 'items', 'from-c', { by: 'c' })
    await waitConverged([a, b, c], new Map([['items/from-a', { by: 'a' }], ['items/from-c', { by: 'c' }]]))
  })
})
