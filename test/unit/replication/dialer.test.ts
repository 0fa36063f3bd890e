import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { Dialer } from '../../../daemon/replication/dialer.ts'
import { PeerBook } from '../../../daemon/replication/peer-book.ts'

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

function setup(maintainsOverlay: boolean): { dialed: string[]; onlyIfNeeded: boolean[]; dialer: Dialer } {
  const dialed: string[] = []
  const onlyIfNeeded: boolean[] = []
  const transport = {
    maintainsOverlay,
    connectedPeers: () => [],
    dial: async (target: string, options?: { onlyIfNeeded?: boolean }) => {
      dialed.push(target)
      onlyIfNeeded.push(options?.onlyIfNeeded === true)
      throw new Error('unreachable')
    },
  }
  const peers = new PeerBook()
  peers.remember('12D3KooWremembered', '/ip4/10.0.0.2/tcp/4718/p2p/12D3KooWremembered')
  const run = { running: true, signal: new AbortController().signal }
  const dialer = new Dialer({ transport, peers, logger: pino({ level: 'silent' }), run }, { seedAddrs: ['/ip4/10.0.0.1/tcp/4718'] })
  return { dialed, onlyIfNeeded, dialer }
}

describe('replicator dialer', () => {
  it('with an overlay, dials the seed addresses only, and only while the overlay needs peers: the overlay chooses the node\'s peers', async () => {
    const { dialed, onlyIfNeeded, dialer } = setup(true)
    dialer.peerConnected()
    await flush()
    expect(dialed).toEqual(['/ip4/10.0.0.1/tcp/4718'])
    expect(onlyIfNeeded).toEqual([true])
  })

  it('without one, dials every remembered peer that is not connected, and the seeds', async () => {
    const { dialed, dialer } = setup(false)
    dialer.peerConnected()
    await flush()
    expect(dialed.sort()).toEqual(['/ip4/10.0.0.1/tcp/4718', '/ip4/10.0.0.2/tcp/4718/p2p/12D3KooWremembered'])
  })
})
