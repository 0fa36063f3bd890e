import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import type { ChangeRecord } from '../../../crdt/index.ts'
import { PeerBook } from '../../../daemon/replication/peer-book.ts'
import { Replicator, type ReplicatorOptions } from '../../../daemon/replication/replicator.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { FakeReplicationTransport } from '../../helpers/fake-transport.ts'
import { remoteChanges } from '../../helpers/remote-changes.ts'
import { waitFor } from '../../helpers/wait-for.ts'

/**
 * The replicator's parts, wired together, against a fake transport: what the transport reports
 * (gossip, invalid input, publishes that miss a peer) reaches the part that handles it, and the
 * counters each part keeps are read through `replicator.stats`.
 */

const logger = pino({ level: 'silent' })
const PEER = '12D3KooWPeerOfTheFake'

const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

async function start(options: ReplicatorOptions = {}): Promise<{ store: EntityStore; transport: FakeReplicationTransport; replicator: Replicator; peers: PeerBook }> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'aaaa', logger })
  await store.open()
  const transport = new FakeReplicationTransport()
  const peers = new PeerBook()
  const replicator = new Replicator({ store, transport, peers, logger }, { gcIntervalMs: 0, ...options })
  replicator.start()
  closers.push(async () => {
    await replicator.stop()
    await store.close()
  })
  return { store, transport, replicator, peers }
}


describe('replicator parts over a fake transport', () => {
  it('a publish that misses a connected peer is counted, and a session with that peer is asked for at once', async () => {
    const { store, transport, replicator } = await start({ gossipPaceMs: 0 })
    transport.connected = [PEER]
    await store.write([{ op: 'put', ns: 'g', id: 'x', value: { i: 1 } }])
    await waitFor(() => transport.published.length === 1)
    expect(replicator.stats.gossipOut).toBe(1)
    await waitFor(() => replicator.stats.gossipUnreached === 1)
    // The fake opens no streams: the session asked for fails, and is counted as failed.
    await waitFor(() => replicator.stats.sessionFailures === 1)
    expect(replicator.stats.sessions).toBe(0)
  })

  it('a publish that reaches every connected peer asks for no session', async () => {
    const { store, transport, replicator } = await start({ gossipPaceMs: 0 })
    transport.connected = [PEER]
    transport.recipients = [PEER]
    await store.write([{ op: 'put', ns: 'g', id: 'x', value: { i: 1 } }])
    await waitFor(() => transport.published.length === 1)
    await replicator.idle()
    expect(replicator.stats.gossipUnreached).toBe(0)
    expect(replicator.stats.sessionFailures).toBe(0)
  })

  it('gossip is ingested in causal order; duplicates are counted, and a gap asks the sender for a session', async () => {
    const { store, transport, replicator } = await start()
    const [c1, c2, c3] = (await remoteChanges(3)) as [ChangeRecord, ChangeRecord, ChangeRecord]
    transport.connected = [PEER]
    transport.emit('gossip', { kind: 'changes', changes: [c3], via: PEER, bytes: 100 })
    await waitFor(() => replicator.pendingCount === 1)
    // c3 waits for c1 and c2: the sender is asked for them (and the fake's session fails).
    await waitFor(() => replicator.stats.sessionFailures === 1)
    transport.emit('gossip', { kind: 'changes', changes: [c1, c2], via: PEER, bytes: 200 })
    await waitFor(() => store.versionVector['bbbb'] === 3)
    transport.emit('gossip', { kind: 'changes', changes: [c1], via: PEER, bytes: 100 })
    await replicator.idle()
    expect(replicator.stats.gossipIn).toBe(4)
    expect(replicator.stats.gossipDuplicates).toBe(1)
    expect(replicator.pendingCount).toBe(0)
  })

  it('invalid input strikes the peer; at the limit it is hung up on and banned', async () => {
    const { transport, replicator, peers } = await start({ maxStrikes: 3 })
    for (let i = 0; i < 2; i++) transport.emit('invalid', { peerId: PEER, surface: 'gossip', reason: 'bad' })
    expect(transport.hungUp).toEqual([])
    transport.emit('invalid', { peerId: PEER, surface: 'gossip', reason: 'bad' })
    expect(replicator.stats.invalidInputs).toBe(3)
    expect(transport.hungUp).toEqual([PEER])
    expect(peers.isBanned(PEER)).toBe(true)
  })

  it('a seed address is dialed until it answers', async () => {
    const { transport } = await start({ seedAddrs: ['/ip4/127.0.0.1/tcp/9'] })
    await waitFor(() => transport.dialed.length >= 1, { timeout: 3000 })
    expect(transport.dialed[0]).toBe('/ip4/127.0.0.1/tcp/9')
  })

  it('reads the counters of every part as one stats object, each counter once', async () => {
    const { replicator } = await start()
    expect(Object.keys(replicator.stats).sort()).toEqual(
      [
        'bytesIn', 'bytesOut', 'gcHorizonRefusals', 'gcRebootstraps', 'gossipDuplicates', 'gossipIn', 'gossipOut', 'gossipUnreached', 'headsBehind', 'invalidInputs',
        'pendingDropped', 'periodicInSync', 'periodicSkipped', 'recordsIn', 'recordsOut', 'relayedSessions', 'sessionFailures', 'sessions', 'snapshotEntitiesIn', 'snapshotEntitiesOut',
      ].sort(),
    )
    expect(Object.values(replicator.stats).every((v) => v === 0)).toBe(true)
  })

  it('stopped, it leaves the transport without listeners', async () => {
    const { transport, replicator } = await start()
    expect(transport.listenerCount('gossip')).toBe(1)
    await replicator.stop()
    for (const event of ['gossip', 'heads', 'invalid', 'peer:connect', 'peer:disconnect', 'peer:subscribed'] as const) expect(transport.listenerCount(event)).toBe(0)
  })
})
