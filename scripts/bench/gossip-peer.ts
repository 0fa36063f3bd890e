/**
 * One raw gossipsub node of the `propagation` baseline, run as a child process of the bench
 * (`fork`, IPC). The libp2p stack is the one of transport/mesh-transport.ts (TCP, pnet, Noise,
 * Yamux, identify, ping, gossipsub with the same options) and nothing of meshsync above it: no
 * storage, no change records, no validation. The bench timestamps both ends itself: before it asks
 * the publisher to publish, and when a receiver's IPC message reporting receipt arrives.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, StrictNoSign, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { PeerCommand, PeerReport } from './gossip-baseline.ts'

const GOSSIP_BENCH_TOPIC = 'meshsync-bench/raw/1'

function report(message: PeerReport): void {
  process.send?.(message)
}

async function main(): Promise<void> {
  const psk = Buffer.from(process.env.MESHSYNC_BENCH_PSK ?? '', 'base64')
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk }),
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { dialTimeout: 10_000 },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        emitSelf: false,
        allowPublishToZeroTopicPeers: true,
        maxInboundDataLength: 256 * 1024 + 4096,
        fallbackToFloodsub: false,
        floodPublish: true,
        heartbeatInterval: 500,
        // The daemon's settings, its signature policy included: the ratio is meshsync's own cost.
        globalSignaturePolicy: StrictNoSign,
      }),
    },
  })
  const pubsub: GossipSub = node.services.pubsub
  pubsub.addEventListener('message', (e) => {
    if (e.detail.topic !== GOSSIP_BENCH_TOPIC) return
    const data = e.detail.data
    report({ type: 'got', seq: new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0), bytes: data.byteLength })
  })
  pubsub.subscribe(GOSSIP_BENCH_TOPIC)

  process.on('message', (message: PeerCommand) => {
    void (async () => {
      switch (message.type) {
        case 'dial':
          for (const addr of message.addrs) await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) })
          report({ type: 'dialed' })
          break
        case 'subscribers':
          report({ type: 'subscribers', count: pubsub.getSubscribers(GOSSIP_BENCH_TOPIC).length })
          break
        case 'publish': {
          const data = new Uint8Array(message.size)
          crypto.getRandomValues(data)
          new DataView(data.buffer).setUint32(0, message.seq)
          await pubsub.publish(GOSSIP_BENCH_TOPIC, data)
          break
        }
        case 'stop':
          await node.stop()
          process.disconnect?.()
          process.exit(0)
      }
    })().catch((error: unknown) => report({ type: 'error', error: error instanceof Error ? (error.stack ?? error.message) : String(error) }))
  })
  process.on('disconnect', () => {
    // The bench went away: do not linger.
    void Promise.resolve(node.stop()).finally(() => process.exit(0))
  })
  report({ type: 'ready', addrs: node.getMultiaddrs().map((ma) => ma.toString()) })
}

main().catch((error: unknown) => {
  report({ type: 'error', error: error instanceof Error ? (error.stack ?? error.message) : String(error) })
  process.exit(1)
})
