import * as prng from 'lib0/prng'
import { describe, expect, it } from 'vitest'
import { counterOf, happenedBefore, type ChangeRecord, type Dot } from '../../crdt/index.ts'
import type { EntityConflictView, LocalOp } from '../../daemon/store/entity-store.ts'
import { cut, newClusterKey, rejoin, replicaState, startMeshNode, type MeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const { nodes } = stoppedAfterEach()

const peerIdOf = (n: MeshNode): string => n.transport.peerId.toString()
const sameVectors = (all: MeshNode[]): boolean => all.every((n) => JSON.stringify(n.store.versionVector) === JSON.stringify(all[0]?.store.versionVector))

async function partition(a: MeshNode, b: MeshNode): Promise<void> {
  await cut(a, b)
  await waitFor(() => !a.transport.connectedPeers().includes(peerIdOf(b)) && !b.transport.connectedPeers().includes(peerIdOf(a)))
}

async function heal(all: MeshNode[]): Promise<void> {
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const [a, b] = [all[i] as MeshNode, all[j] as MeshNode]
      if (!a.transport.connectedPeers().includes(peerIdOf(b))) await rejoin(a, b)
    }
  }
  await waitFor(
    async () => {
      for (const n of all) for (const p of n.transport.connectedPeers()) n.replicator.syncWith(p)
      await Promise.all(all.map((n) => n.replicator.idle()))
      return sameVectors(all)
    },
    { timeout: 30_000, interval: 100 },
  )
}

/** Two nodes with gossip off (so nothing flows while they are apart) and no automatic redial. */
async function pair(options: { policies?: Record<string, 'auto' | 'strict'> } = {}): Promise<[MeshNode, MeshNode]> {
  const key = newClusterKey()
  const a = await startMeshNode({ clusterKey: key, gossip: false, ...options })
  const b = await startMeshNode({ clusterKey: key, gossip: false, ...options })
  nodes.push(a, b)
  return [a, b]
}

describe('conflicts', () => {
  it('two nodes apart set the same field: both report the same conflict and winner; resolving on one clears both', async () => {
    const [a, b] = await pair()
    await a.store.write([{ op: 'put', ns: 'c', id: 'x', value: { color: 'white', size: 1 } }])
    await heal([a, b])
    await partition(a, b)
    await a.store.write([{ op: 'patch', ns: 'c', id: 'x', value: { color: 'red' } }])
    await b.store.write([{ op: 'patch', ns: 'c', id: 'x', value: { color: 'blue', size: 2 } }])
    await heal([a, b])

    const [ca, cb] = [await a.store.conflicts(), await b.store.conflicts()]
    expect(ca).toEqual(cb)
    expect(ca).toHaveLength(1)
    const conflict = ca[0] as EntityConflictView
    expect(conflict.field).toBe('color')
    expect(conflict.values.map((v) => [v.origin, v.value]).sort()).toEqual(
      [
        [a.store.nodeId, 'red'],
        [b.store.nodeId, 'blue'],
      ].sort(),
    )
    const [ea, eb] = [await a.store.get('c', 'x'), await b.store.get('c', 'x')]
    expect(ea.value).toEqual(eb.value)
    expect(conflict.winner).toBe(ea.value.color)
    expect(ea.conflicts).toEqual(eb.conflicts)
    // size was written by b alone: no conflict there.
    expect(ea.value.size).toBe(2)

    await a.store.write([{ op: 'resolve', ns: 'c', id: 'x', value: { color: 'purple' } }])
    await heal([a, b])
    expect(await a.store.conflicts()).toEqual([])
    expect(await b.store.conflicts()).toEqual([])
    expect((await b.store.get('c', 'x')).value).toEqual({ color: 'purple', size: 2 })
    expect((await b.store.get('c', 'x')).conflicts).toBeUndefined()
  })

  it('a delete concurrent with an update: the update survives and the conflict is recorded on both', async () => {
    const [a, b] = await pair()
    await a.store.write([{ op: 'put', ns: 'c', id: 'y', value: { v: 1, w: 1 } }])
    await heal([a, b])
    await partition(a, b)
    await a.store.write([{ op: 'delete', ns: 'c', id: 'y' }])
    await b.store.write([{ op: 'patch', ns: 'c', id: 'y', value: { v: 2 } }])
    await heal([a, b])
    for (const n of [a, b]) {
      const e = await n.store.get('c', 'y')
      expect(e.value).toEqual({ v: 2, w: 1 })
      expect(e.conflicts?.map((c) => c.field)).toEqual(['$deleted'])
      expect(e.conflicts?.[0]?.values.find((v) => v.deleted)?.origin).toBe(a.store.nodeId)
    }
    expect(await a.store.conflicts()).toEqual(await b.store.conflicts())
    // A plain write made on top of both siblings clears it too.
    await b.store.write([{ op: 'patch', ns: 'c', id: 'y', value: { w: 3 } }])
    await heal([a, b])
    expect(await a.store.conflicts()).toEqual([])
  })

  it('strict policy: writes to a conflicted entity get UNRESOLVED_CONFLICT until it is resolved', async () => {
    const [a, b] = await pair({ policies: { ledger: 'strict' } })
    await a.store.write([{ op: 'put', ns: 'ledger', id: 'acct', value: { balance: 10 } }])
    await heal([a, b])
    await partition(a, b)
    await a.store.write([{ op: 'patch', ns: 'ledger', id: 'acct', value: { balance: 5 } }])
    await b.store.write([{ op: 'patch', ns: 'ledger', id: 'acct', value: { balance: 7 } }])
    await heal([a, b])
    await expect(a.store.write([{ op: 'patch', ns: 'ledger', id: 'acct', value: { balance: 1 } }])).rejects.toMatchObject({ code: 'UNRESOLVED_CONFLICT' })
    await expect(b.store.write([{ op: 'delete', ns: 'ledger', id: 'acct' }])).rejects.toMatchObject({ code: 'UNRESOLVED_CONFLICT' })
    // Other entities of the namespace are unaffected.
    await a.store.write([{ op: 'put', ns: 'ledger', id: 'other', value: { balance: 0 } }])
    await b.store.write([{ op: 'resolve', ns: 'ledger', id: 'acct', value: { balance: 12 } }])
    await heal([a, b])
    await a.store.write([{ op: 'patch', ns: 'ledger', id: 'acct', value: { balance: 13 } }])
    expect((await a.store.get('ledger', 'acct')).value).toEqual({ balance: 13 })
  })

  it('randomized: 4 nodes, seeded concurrent edits; reported conflicts are exactly the model\'s, identical on every node', async () => {
    const key = newClusterKey()
    nodes.push(...(await Promise.all([0, 1, 2, 3].map(() => startMeshNode({ clusterKey: key, gossip: false })))))
    const gen = prng.create(4242)
    const ids = ['p', 'q', 'r']
    const fields = ['f0', 'f1', 'f2']
    for (let round = 0; round < 12; round++) {
      // Random groups of nodes are connected and synced; the others write alone meanwhile.
      for (let i = 0; i < 4; i++) {
        for (let j = i + 1; j < 4; j++) {
          const [x, y] = [nodes[i] as MeshNode, nodes[j] as MeshNode]
          const linked = x.transport.connectedPeers().includes(peerIdOf(y))
          if (prng.bool(gen) && !linked) await rejoin(x, y)
          else if (linked && prng.real53(gen) < 0.5) await cut(x, y)
        }
      }
      for (const n of nodes) for (const p of n.transport.connectedPeers()) n.replicator.syncWith(p)
      await Promise.all(nodes.map((n) => n.replicator.idle()))
      for (let k = 0; k < 6; k++) {
        const n = nodes[prng.uint32(gen, 0, 3)] as MeshNode
        const id = prng.oneOf(gen, ids)
        const roll = prng.uint32(gen, 0, 9)
        try {
          if (roll === 0) await n.store.write([{ op: 'delete', ns: 'm', id }])
          else await n.store.write([{ op: 'patch', ns: 'm', id, value: { [prng.oneOf(gen, fields)]: prng.uint32(gen, 0, 99) } }])
        } catch (error) {
          if ((error as { code?: string }).code !== 'ENTITY_NOT_FOUND') throw error
        }
      }
    }
    // A last round with every node alone, so that some conflicts stay unresolved at the end.
    for (let i = 0; i < 4; i++) for (let j = i + 1; j < 4; j++) await cut(nodes[i] as MeshNode, nodes[j] as MeshNode)
    for (let k = 0; k < 8; k++) {
      const n = nodes[prng.uint32(gen, 0, 3)] as MeshNode
      const id = prng.oneOf(gen, ids)
      const op: LocalOp = prng.uint32(gen, 0, 5) === 0 ? { op: 'delete', ns: 'm', id } : { op: 'patch', ns: 'm', id, value: { [prng.oneOf(gen, fields)]: k } }
      await n.store.write([op]).catch((error: { code?: string }) => {
        if (error.code !== 'ENTITY_NOT_FOUND') throw error
      })
    }
    await heal(nodes)
    const reported = await Promise.all(nodes.map((n) => n.store.conflicts()))
    for (const r of reported.slice(1)) expect(r).toEqual(reported[0])
    const states = await Promise.all(nodes.map(replicaState))
    for (const state of states.slice(1)) expect(state).toEqual(states[0])

    // The model, from every change record: per field, the maximal writes; a conflict when there
    // are two or more and no change saw them all; a delete concurrent with an update at the top.
    const all: ChangeRecord[] = []
    const vv = nodes[0]?.store.versionVector ?? {}
    for (const origin of Object.keys(vv)) for await (const c of (nodes[0] as MeshNode).store.changeLog(origin, 0)) all.push(c)
    const expected: string[] = []
    for (const id of ids) {
      const changes = all.filter((c) => c.id === id)
      const saw = (x: Dot, y: ChangeRecord): boolean => happenedBefore(x, y)
      const maximal = changes.filter((c) => !changes.some((d) => saw(c, d)))
      for (const f of fields) {
        const writes = changes.filter((c) => c.fields.includes(f))
        const heads = writes.filter((w) => !writes.some((v) => saw(w, v)))
        if (heads.length >= 2 && !maximal.some((m) => heads.every((h) => saw(h, m)))) {
          expected.push(`${id}/${f}:${heads.map((h) => `${h.origin}:${h.seq}`).sort().join(',')}`)
        }
      }
      if (maximal.some((m) => m.op === 'delete') && maximal.some((m) => m.op === 'upsert')) {
        expected.push(`${id}/$deleted:${maximal.map((h) => `${h.origin}:${h.seq}`).sort().join(',')}`)
      }
    }
    const got = (reported[0] ?? []).map((c) => `${c.id}/${c.field}:${c.values.map((v) => `${v.origin}:${counterOf(v.version, v.origin)}`).sort().join(',')}`)
    expect(got.sort()).toEqual(expected.sort())
    console.log(`conflicts model: ${expected.length} expected, ${all.length} changes`)
    expect(expected.length).toBeGreaterThanOrEqual(2)
    expect(all.length).toBeGreaterThan(50)
  })
})
