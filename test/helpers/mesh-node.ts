import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import * as Y from 'yjs'
import { LevelKvStore } from '../../daemon/storage/index.ts'
import type { MeshNode } from '../../scripts/lib/mesh-node.ts'

/** The in-process node lives in scripts/lib (the bench starts it too). */
export { newClusterKey, silentLogger, startMeshNode, type MeshNode, type MeshNodeOptions } from '../../scripts/lib/mesh-node.ts'

/**
 * What a test file's tests start, stopped after each test: call once at the top of the file and
 * push every node (and raw libp2p peer) a test starts. Raw peers stop first.
 */
export function stoppedAfterEach(): { readonly nodes: MeshNode[]; readonly raws: { stop(): void | Promise<void> }[] } {
  const nodes: MeshNode[] = []
  const raws: { stop(): void | Promise<void> }[] = []
  afterEach(async () => {
    await Promise.all(raws.splice(0).map((r) => r.stop()))
    await Promise.all(nodes.splice(0).map((n) => n.stop()))
  })
  return { nodes, raws }
}

/** A LevelDB store in a fresh temp dir, and its cleanup. */
export async function tempLevel(): Promise<{ kv: LevelKvStore; dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshsync-level-'))
  return { kv: new LevelKvStore(join(dir, 'db')), dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

/** Everything a replica holds, in a form two replicas can be compared by. */
export interface ReplicaState {
  nodeVv: Record<string, number>
  entities: Record<string, { value: unknown; deleted: boolean; vv: unknown; stateVector: number[]; texts: Record<string, string> }>
}

export async function replicaState(node: MeshNode): Promise<ReplicaState> {
  const entities: ReplicaState['entities'] = {}
  for await (const e of node.store.entities()) {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, e.state)
    const texts: Record<string, string> = {}
    for (const name of e.meta.texts) texts[name] = doc.getText(name).toString()
    entities[`${e.ns}/${e.id}`] = {
      value: e.meta.value,
      deleted: e.meta.deleted,
      vv: e.meta.vv,
      stateVector: [...Y.encodeStateVector(doc)],
      texts,
    }
  }
  return { nodeVv: { ...node.store.versionVector }, entities }
}

/** Cuts the link between two nodes and keeps it cut (each refuses the other) until {@link rejoin}. */
export async function cut(a: MeshNode, b: MeshNode): Promise<void> {
  const [pa, pb] = [a.transport.peerId.toString(), b.transport.peerId.toString()]
  a.peers.ban(pb, Number.MAX_SAFE_INTEGER)
  b.peers.ban(pa, Number.MAX_SAFE_INTEGER)
  await a.transport.hangUp(pb)
  await b.transport.hangUp(pa)
}

/** Lifts a {@link cut} and connects the two nodes again. */
export async function rejoin(a: MeshNode, b: MeshNode): Promise<void> {
  a.peers.ban(b.transport.peerId.toString(), 0)
  b.peers.ban(a.transport.peerId.toString(), 0)
  // A connection that was just cut may still be closing: retry the dial briefly.
  for (let attempt = 0; ; attempt++) {
    try {
      await a.transport.dial(b.addr())
      return
    } catch (error) {
      if (attempt >= 20) throw error
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}
