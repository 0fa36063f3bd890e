import { peerIdFromString } from '@libp2p/peer-id'
import { CODE_P2P, multiaddr, type Multiaddr } from '@multiformats/multiaddr'

/**
 * Why `addr` cannot be a bootstrap address, or undefined when it can: it must be a multiaddr that
 * ends in the node's peer id (`/p2p/12D3KooW...`). libp2p's bootstrap discovery drops any other
 * address with a debug log line only, so a node given one would start and never connect.
 */
export function bootstrapAddressProblem(addr: string): string | undefined {
  let ma: Multiaddr
  try {
    ma = multiaddr(addr)
  } catch {
    return 'is not a multiaddr (e.g. /ip4/10.0.0.1/tcp/4718/p2p/12D3KooW...)'
  }
  const id = ma.getComponents().findLast((c) => c.code === CODE_P2P)?.value
  if (id === undefined) return "has no peer id: end it with /p2p/<peer id> (the 'listen' address a node prints when it starts has it)"
  try {
    peerIdFromString(id)
  } catch {
    return `ends in ${JSON.stringify(id)}, which is not a peer id`
  }
  return undefined
}
