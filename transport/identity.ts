import { createHash } from 'node:crypto'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { generateKey } from '@libp2p/pnet'

/** A node's libp2p identity and the short node id used in version vectors. */
export interface NodeIdentity {
  readonly privateKey: PrivateKey
  readonly peerId: PeerId
  readonly nodeId: string
}

/** A new Ed25519 identity, as protobuf bytes for the key file. */
export async function generateIdentityKey(): Promise<Uint8Array> {
  return privateKeyToProtobuf(await generateKeyPair('Ed25519'))
}

/** The identity held by key-file bytes. */
export function identityFromKey(bytes: Uint8Array): NodeIdentity {
  const privateKey = privateKeyFromProtobuf(bytes)
  const peerId = peerIdFromPrivateKey(privateKey)
  return { privateKey, peerId, nodeId: nodeIdOf(peerId) }
}

/**
 * The node id of a peer: 16 lower-case hex characters of SHA-256 over its multihash. Short,
 * because it appears in every version vector; derived, so any node can map peer -> node.
 */
export function nodeIdOf(peerId: PeerId): string {
  return createHash('sha256').update(peerId.toMultihash().bytes).digest('hex').slice(0, 16)
}

/** The node id of a peer given as its string form (`12D3KooW...`). */
export function nodeIdOfPeerId(peerId: string): string {
  return nodeIdOf(peerIdFromString(peerId))
}

/** A new libp2p private-network (pnet) pre-shared key, in its text file format. */
export function generateClusterKey(): Uint8Array {
  const key = new Uint8Array(95)
  generateKey(key)
  return key
}
