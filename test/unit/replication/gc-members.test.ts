import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { PeerBook } from '../../../daemon/replication/peer-book.ts'
import { Replicator } from '../../../daemon/replication/replicator.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { nodeIdOfPeerId } from '../../../transport/index.ts'
import { FakeReplicationTransport } from '../../helpers/fake-transport.ts'

const logger = pino({ level: 'silent' })
const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

/**
 * With an overlay a node connects to a few members, not all: tombstone GC must still wait for the
 * acknowledgement of every member the transport knows (docs/tombstone-gc.md), not only of the
 * peers this node met or whose writes it holds.
 */
describe('tombstone GC members', () => {
  it('include every member the transport knows, connected or not', async () => {
    const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'aaaa', logger })
    await store.open()
    const transport = new FakeReplicationTransport()
    const replicator = new Replicator({ store, transport, peers: new PeerBook(), logger }, { gcIntervalMs: 0 })
    closers.push(() => store.close())
    const far = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    expect(replicator.gc.members()).not.toContain(nodeIdOfPeerId(far))
    transport.memberList = [{ peerId: far }]
    expect(replicator.gc.members()).toContain(nodeIdOfPeerId(far))
  })
})
