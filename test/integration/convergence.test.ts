import * as prng from 'lib0/prng'
import { describe, expect, it } from 'vitest'
import type { JsonRecord } from '../../crdt/index.ts'
import type { LocalOp } from '../../daemon/store/entity-store.ts'
import { newClusterKey, replicaState, startMeshNode, type MeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const SEED = Number(process.env.MESHSYNC_SEED ?? 1337)
const { nodes } = stoppedAfterEach()

async function connect(a: MeshNode, b: MeshNode): Promise<void> {
  await a.transport.dial(b.addr())
}

/** Dials every pair, then waits until every replica has the same version vector. */
async function healAndConverge(all: MeshNode[], timeout = 60_000): Promise<void> {
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const [a, b] = [all[i] as MeshNode, all[j] as MeshNode]
      if (!a.transport.connectedPeers().includes(b.transport.peerId.toString())) await connect(a, b)
    }
  }
  await converge(all, timeout)
}

/** Runs anti-entropy over the existing connections until all version vectors are equal. */
async function converge(all: MeshNode[], timeout = 60_000): Promise<void> {
  await waitFor(
    async () => {
      for (const n of all) for (const p of n.transport.connectedPeers()) n.replicator.syncWith(p)
      await Promise.all(all.map((n) => n.replicator.idle()))
      const vvs = all.map((n) => JSON.stringify(n.store.versionVector))
      return vvs.every((v) => v === vvs[0]) && all.every((n) => n.replicator.pendingCount === 0)
    },
    { timeout, interval: 200 },
  )
}

async function expectIdentical(all: MeshNode[]): Promise<void> {
  const states = await Promise.all(all.map(replicaState))
  for (const s of states.slice(1)) expect(s).toEqual(states[0])
}

/** A random operation on a random entity, as a user of node `node` would make it. */
async function randomOp(gen: prng.PRNG, node: MeshNode, ns: string, ids: number): Promise<void> {
  const id = `e${prng.uint32(gen, 0, ids - 1)}`
  const kind = prng.uint32(gen, 0, 9)
  const field = `f${prng.uint32(gen, 0, 4)}`
  const value = prng.word(gen, 1, 6)
  let op: LocalOp
  if (kind < 3) {
    const record: JsonRecord = {}
    for (let i = prng.uint32(gen, 0, 3); i > 0; i--) record[`f${prng.uint32(gen, 0, 4)}`] = prng.word(gen, 1, 4)
    op = { op: 'put', ns, id, value: record }
  } else if (kind < 6) {
    op = { op: 'patch', ns, id, value: { [field]: prng.bool(gen) ? value : null } }
  } else if (kind < 7) {
    op = { op: 'delete', ns, id }
  } else {
    let length: number
    try {
      length = (await node.store.getText(ns, id, 'body')).text.length
    } catch {
      length = 0
    }
    const pos = prng.uint32(gen, 0, length)
    const del = prng.uint32(gen, 0, Math.min(3, length - pos))
    op = { op: 'text', ns, id, name: 'body', splices: [[pos, del, prng.word(gen, 0, 5)]] }
  }
  try {
    await node.store.write([op])
  } catch (error) {
    // Refusals a user can get (deleting a missing entity; a splice the text moved under) are fine.
    const code = (error as { code?: string }).code
    if (code !== 'ENTITY_NOT_FOUND' && code !== 'TEXT_RANGE') throw error
  }
}

describe('replication convergence (in-process nodes over TCP + pnet + Noise)', () => {
  it(`5 nodes, random writes, random disconnects and dropped gossip, converge (seed ${SEED})`, async () => {
    const key = newClusterKey()
    const gen = prng.create(SEED)
    const dropGens = Array.from({ length: 5 }, (_, i) => prng.create(SEED * 31 + i))
    nodes.push(...(await Promise.all(dropGens.map((g) => startMeshNode({ clusterKey: key, dropInboundGossip: () => prng.real53(g) < 0.25 })))))
    for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) await connect(nodes[i] as MeshNode, nodes[j] as MeshNode)

    for (let round = 0; round < 40; round++) {
      const ops: Promise<void>[] = []
      for (let k = 0; k < 8; k++) ops.push(randomOp(gen, nodes[prng.uint32(gen, 0, 4)] as MeshNode, 'conv', 8))
      await Promise.all(ops)
      const roll = prng.uint32(gen, 0, 9)
      const a = nodes[prng.uint32(gen, 0, 4)] as MeshNode
      const b = nodes[prng.uint32(gen, 0, 4)] as MeshNode
      if (a !== b && roll < 2) await a.transport.hangUp(b.transport.peerId.toString())
      else if (a !== b && roll < 4) await connect(a, b).catch(() => undefined)
    }

    await healAndConverge(nodes)
    await expectIdentical(nodes)
    const total = Object.values(nodes[0]?.store.versionVector ?? {}).reduce((x, y) => x + y, 0)
    expect(total).toBeGreaterThan(150)
  })

  it('with gossip switched off, anti-entropy alone converges', async () => {
    const key = newClusterKey()
    nodes.push(...(await Promise.all([0, 1, 2].map(() => startMeshNode({ clusterKey: key, gossip: false, replicator: { antiEntropyIntervalMs: 300 } })))))
    await connect(nodes[0] as MeshNode, nodes[1] as MeshNode)
    await connect(nodes[1] as MeshNode, nodes[2] as MeshNode)
    await connect(nodes[0] as MeshNode, nodes[2] as MeshNode)
    const gen = prng.create(SEED + 1)
    for (let i = 0; i < 60; i++) await randomOp(gen, nodes[i % 3] as MeshNode, 'quiet', 6)
    // No explicit sync: only the periodic, jittered anti-entropy runs.
    await waitFor(
      () => {
        const vvs = nodes.map((n) => JSON.stringify(n.store.versionVector))
        return vvs.every((v) => v === vvs[0])
      },
      { timeout: 30_000, interval: 100 },
    )
    await Promise.all(nodes.map((n) => n.replicator.idle()))
    await expectIdentical(nodes)
    expect(nodes.every((n) => n.replicator.stats.gossipIn === 0)).toBe(true)
  })

  it('line topology A-B-C: writes at both ends reach the other end through B', async () => {
    const key = newClusterKey()
    const b = await startMeshNode({ clusterKey: key })
    nodes.push(b)
    const bId = b.transport.peerId.toString()
    const a = await startMeshNode({ clusterKey: key, allowPeers: [bId] })
    const c = await startMeshNode({ clusterKey: key, allowPeers: [bId] })
    nodes.push(a, c)
    await connect(a, b)
    await connect(c, b)
    await a.store.write([{ op: 'put', ns: 'line', id: 'from-a', value: { v: 'a' } }])
    await c.store.write([{ op: 'put', ns: 'line', id: 'from-c', value: { v: 'c' } }])
    await c.store.write([{ op: 'text', ns: 'line', id: 'doc', name: 'body', splices: [[0, 0, 'hello']] }])
    await waitFor(async () => {
      try {
        await a.store.get('line', 'from-c')
        await c.store.get('line', 'from-a')
        return (await a.store.getText('line', 'doc', 'body')).text === 'hello'
      } catch {
        return false
      }
    }, { timeout: 20_000 })
    expect(a.transport.connectedPeers()).toEqual([bId])
    expect(c.transport.connectedPeers()).toEqual([bId])
    await converge([a, b, c])
    const states = await Promise.all([a, b, c].map(replicaState))
    expect(states[0]).toEqual(states[1])
    expect(states[2]).toEqual(states[1])
  })
})
