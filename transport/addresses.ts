import { peerIdFromString } from '@libp2p/peer-id'
import { CODE_P2P, multiaddr, type Multiaddr } from '@multiformats/multiaddr'

/**
 * Why `addr` cannot be a bootstrap address, or undefined when it can: a multiaddr, with or
 * without the node's peer id at the end (`/p2p/12D3KooW...`); a peer id there must parse.
 */
export function bootstrapAddressProblem(addr: string): string | undefined {
  let ma: Multiaddr
  try {
    ma = multiaddr(addr)
  } catch {
    return 'is not a multiaddr (e.g. /ip4/10.0.0.1/tcp/4718)'
  }
  const id = peerIdIn(ma)
  if (id === undefined) return undefined
  try {
    peerIdFromString(id)
  } catch {
    return `ends in ${JSON.stringify(id)}, which is not a peer id`
  }
  return undefined
}

/**
 * Why `addr` cannot be a p2p listen address, or undefined when it can: a TCP multiaddr
 * (`/ip4/0.0.0.0/tcp/4718`, `/ip6/::/tcp/0`), without a peer id.
 */
export function listenAddressProblem(addr: string): string | undefined {
  let ma: Multiaddr
  try {
    ma = multiaddr(addr)
  } catch {
    return 'is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/4718)'
  }
  const names = ma.getComponents().map((c) => c.name)
  if (!names.includes('tcp') || !['ip4', 'ip6', 'dns4', 'dns6', 'dns'].includes(names[0] as string)) return 'is not a TCP address (e.g. /ip4/0.0.0.0/tcp/4718)'
  if (names.includes('p2p')) return 'names a peer id: a listen address is only a host and port'
  return undefined
}

/**
 * The peer id a bootstrap address names (`/p2p/<id>` at its end), or undefined when it names
 * none: libp2p's bootstrap discovery drops such an address, so the replicator dials it itself
 * until the peer answers (and the peer book learns its id).
 */
export function peerIdOfAddress(addr: string): string | undefined {
  return peerIdIn(multiaddr(addr))
}

function peerIdIn(ma: Multiaddr): string | undefined {
  return ma.getComponents().findLast((c) => c.code === CODE_P2P)?.value
}
