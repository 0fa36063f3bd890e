import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateClusterKey } from '../../transport/index.ts'
import { IpcChild } from './ipc-child.ts'

/** Bench → raw gossipsub peer (scripts/bench/gossip-peer.ts). */
export type PeerCommand =
  | { readonly type: 'dial'; readonly addrs: readonly string[] }
  | { readonly type: 'subscribers' }
  | { readonly type: 'publish'; readonly seq: number; readonly size: number }
  | { readonly type: 'stop' }

/** Raw gossipsub peer → bench. */
export type PeerReport =
  | { readonly type: 'ready'; readonly addrs: readonly string[] }
  | { readonly type: 'dialed' }
  | { readonly type: 'subscribers'; readonly count: number }
  | { readonly type: 'got'; readonly seq: number; readonly bytes: number }
  | { readonly type: 'error'; readonly error: string }

const PEER_SCRIPT = join(import.meta.dirname, 'gossip-peer.ts')

/**
 * `n` raw gossipsub nodes, one process each, in a full mesh on loopback (node i dials every node
 * before it, as the daemons bootstrap), sharing a fresh pnet key.
 */
export class GossipMesh {
  readonly peers: readonly IpcChild<PeerCommand, PeerReport>[]

  private constructor(peers: readonly IpcChild<PeerCommand, PeerReport>[]) {
    this.peers = peers
  }

  static async start(n: number): Promise<GossipMesh> {
    const psk = Buffer.from(generateClusterKey()).toString('base64')
    const peers: IpcChild<PeerCommand, PeerReport>[] = []
    const addrs: string[] = []
    try {
      for (let i = 0; i < n; i++) {
        const { child, ready } = await IpcChild.start<PeerCommand, PeerReport>(PEER_SCRIPT, { env: { MESHSYNC_BENCH_PSK: psk } })
        peers.push(child)
        if (ready.type !== 'ready' || ready.addrs.length === 0) throw new Error('gossip peer reported no listen address')
        if (addrs.length > 0) await child.request({ type: 'dial', addrs }, 'dialed', 30_000)
        addrs.push(ready.addrs[0] as string)
      }
      const mesh = new GossipMesh(peers)
      await mesh.waitForSubscribers()
      return mesh
    } catch (error) {
      await Promise.all(peers.map((p) => p.stop()))
      throw error
    }
  }

  /** Waits until every peer sees every other peer subscribed to the topic. */
  async waitForSubscribers(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const counts = await Promise.all(this.peers.map(async (p) => ((await p.request({ type: 'subscribers' }, 'subscribers')) as { count: number }).count))
      if (counts.every((c) => c >= this.peers.length - 1)) return
      if (Date.now() > deadline) throw new Error(`gossip peers not subscribed to each other: ${counts.join(', ')}`)
      await sleep(50)
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.stop()))
  }
}
