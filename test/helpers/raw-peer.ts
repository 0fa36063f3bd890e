import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, StrictNoSign, StrictSign, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { changesTopic, generateIdentityKey, identityFromKey } from '../../transport/index.ts'

/**
 * A bare libp2p peer holding the cluster key (through the stock @libp2p/pnet, which also checks
 * that meshsync's own protector speaks the same wire format): it speaks meshsync's formats, but
 * sends whatever a test likes. Subscribed to the changes topic (the signed one of nodes before 0.2
 * with `signed`), publishing with that topic's signature policy. The caller stops it.
 */
export async function startRawPeer(clusterKey: Uint8Array, options: { signed?: boolean } = {}): Promise<{ node: Libp2p<{ pubsub: GossipSub }>; nodeId: string; topic: string }> {
  const signed = options.signed ?? false
  const identity = identityFromKey(await generateIdentityKey())
  const node = await createLibp2p({
    privateKey: identity.privateKey,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk: clusterKey }),
    services: {
      identify: identify(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, floodPublish: true, heartbeatInterval: 200, globalSignaturePolicy: signed ? StrictSign : StrictNoSign }),
    },
  })
  const topic = changesTopic(signed)
  node.services.pubsub.subscribe(topic)
  return { node, nodeId: identity.nodeId, topic }
}
