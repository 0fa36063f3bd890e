import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import * as prng from 'lib0/prng'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Libp2p } from 'libp2p'
import { afterAll, describe, expect, it } from 'vitest'
import { SocketApi } from '../../scripts/chaos/api.ts'
import { fuzzGossip, fuzzRest, fuzzSyncSession } from '../../scripts/chaos/fuzz.ts'
import { SYNC_PROTOCOL } from '../../transport/index.ts'
import { put } from '../helpers/cluster.ts'
import { startDaemon, stopAllDaemons } from '../helpers/daemon-process.ts'
import { newClusterKey, replicaState, startMeshNode, type MeshNode } from '../helpers/mesh-node.ts'
import { removeTempDirs } from '../helpers/temp-dir.ts'
import { startRawPeer } from '../helpers/raw-peer.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * Seeded fuzzing of the inbound surfaces (issue 6, part 6): at least 10,000 inputs per surface.
 * REST against a real daemon process; sync-protocol frames and gossip messages from a raw libp2p
 * peer holding the cluster key, against a node (store + transport + replicator) that does not
 * ban it. The node must stay up, answer, and keep its data unchanged by the invalid inputs.
 */

const INPUTS = Number(process.env.MESHSYNC_FUZZ_INPUTS ?? 10_000)
const SEED = Number(process.env.MESHSYNC_FUZZ_SEED ?? 2026)
const closers: (() => Promise<void> | void)[] = []

afterAll(async () => {
  for (const close of closers.reverse()) await Promise.resolve().then(close).catch(() => undefined)
  await stopAllDaemons()
  await removeTempDirs()
})

async function rawPeer(clusterKey: Uint8Array): Promise<Awaited<ReturnType<typeof startRawPeer>>> {
  const peer = await startRawPeer(clusterKey)
  const { node } = peer
  closers.push(() => node.stop())
  return peer
}

async function victimWithEvilPeer(): Promise<{ victim: MeshNode; evil: Libp2p<{ pubsub: GossipSub }>; evilNodeId: string }> {
  const key = newClusterKey()
  // No ban: every input must reach the code under test.
  const victim = await startMeshNode({ clusterKey: key, replicator: { maxStrikes: Number.MAX_SAFE_INTEGER } })
  closers.push(() => victim.stop())
  await victim.store.write([
    { op: 'put', ns: 'canary', id: 'a', value: { v: 1 } },
    { op: 'text', ns: 'canary', id: 't', name: 'body', splices: [[0, 0, 'hello']] },
  ])
  const { node: evil, nodeId: evilNodeId } = await rawPeer(key)
  await evil.dial(multiaddr(victim.addr()))
  await waitFor(() => evil.services.pubsub.getSubscribers(victim.transport.gossipTopic).some((p) => p.equals(victim.transport.peerId)), { timeout: 10_000 })
  return { victim, evil, evilNodeId }
}

describe('fuzzing inbound surfaces', () => {
  it(`REST: ${INPUTS} seeded requests to a real daemon; it stays up, answers 4xx, and refused requests change nothing`, { timeout: 300_000 }, async () => {
    const d = await startDaemon()
    await put(d, 'canary', 'a', { v: 1, nested: { x: [1, 2] } })
    const before = (await d.sock('GET', '/v1/ns/canary/entities/a')).json
    const api = new SocketApi(d.info.api.socket)
    closers.push(() => api.close())
    const result = await fuzzRest(api, SEED, INPUTS + 200)
    console.log(`REST fuzz: ${result.inputs} inputs, by status ${JSON.stringify(result.byStatus)}, ${result.serverErrors.length} server errors, ${result.noAnswer} unanswered`)
    expect(result.inputs).toBeGreaterThanOrEqual(INPUTS)
    expect(d.child.exitCode).toBeNull()
    expect(result.noAnswer).toBe(0)
    expect(result.serverErrors).toEqual([])
    expect(result.changedByRefused).toEqual([])
    expect((await d.sock('GET', '/v1/health')).status).toBe(200)
    expect((await d.sock('GET', '/v1/ns/canary/entities/a')).json).toEqual(before)
    await put(d, 'canary', 'b', { still: 'writable' })
  })

  it(`sync protocol: >= ${INPUTS} seeded frames and change records from a raw peer with the key`, { timeout: 300_000 }, async () => {
    const { victim, evil, evilNodeId } = await victimWithEvilPeer()
    const before = await replicaState(victim)
    const gen = prng.create(SEED)
    let inputs = 0
    let sessions = 0
    let refusedStreams = 0
    // Streams the node never opened: their inputs did not reach it and are not counted.
    let undelivered = 0
    while ((inputs < INPUTS || sessions < 1000) && undelivered < 50) {
      const { frames, inputs: n } = fuzzSyncSession(gen, { nodeId: evilNodeId, vv: victim.store.versionVector })
      let stream
      try {
        stream = await evil.dialProtocol(victim.transport.peerId, SYNC_PROTOCOL)
      } catch {
        undelivered++
        continue
      }
      sessions++
      inputs += n
      try {
        const lp = lpStream(stream, { maxDataLength: 64 * 1024 * 1024 })
        for (const f of frames) await lp.write(f)
        // Give the node a moment to read (and refuse) what it got, then hang up.
        await new Promise((r) => setTimeout(r, 2))
        stream.abort(new Error('fuzz'))
      } catch {
        // The node reset the stream on what it read: the input reached it and was refused.
        refusedStreams++
      }
    }
    await victim.replicator.idle()
    console.log(`sync fuzz: ${inputs} inputs in ${sessions} sessions (${refusedStreams} streams refused, ${undelivered} not opened); node counted ${victim.replicator.stats.invalidInputs} invalid inputs, ${victim.replicator.stats.sessionFailures} failed sessions`)
    expect(undelivered).toBeLessThan(50)
    expect(inputs).toBeGreaterThanOrEqual(INPUTS)
    expect(victim.replicator.stats.invalidInputs).toBeGreaterThan(sessions / 4)
    expect(await replicaState(victim)).toEqual(before)
    await victim.store.write([{ op: 'patch', ns: 'canary', id: 'a', value: { w: 2 } }])
    expect((await victim.store.get('canary', 'a')).value).toEqual({ v: 1, w: 2 })
  })

  it(`gossip: >= ${INPUTS} seeded messages from a raw peer with the key`, { timeout: 300_000 }, async () => {
    const { victim, evil, evilNodeId } = await victimWithEvilPeer()
    const before = await replicaState(victim)
    const gen = prng.create(SEED + 1)
    // Only messages gossipsub sent to a peer count as published. A message equal to an earlier
    // one (the generator repeats a short random message now and then) is refused as a duplicate,
    // by the node's gossipsub too: it is no new input, and not counted.
    let published = 0
    let duplicates = 0
    let notPublished = 0
    for (let i = 0; published < INPUTS && notPublished < 50; i++) {
      const outcome = await evil.services.pubsub.publish(victim.transport.gossipTopic, fuzzGossip(gen, evilNodeId)).then(
        (result) => (result.recipients.length > 0 ? 'sent' : 'no peer'),
        (error: unknown) => (String(error).includes('PublishError.Duplicate') ? 'duplicate' : 'failed'),
      )
      if (outcome === 'sent') published++
      else if (outcome === 'duplicate') duplicates++
      else notPublished++
      if (i % 200 === 0) await new Promise((r) => setTimeout(r, 5))
    }
    const seen = (): number => victim.replicator.stats.gossipIn + victim.replicator.stats.invalidInputs
    await waitFor(() => seen() >= published * 0.9 || undefined, { timeout: 60_000, message: 'the node to see the gossip' }).catch(() => undefined)
    await victim.replicator.idle()
    console.log(`gossip fuzz: ${published} messages published (${duplicates} duplicates, ${notPublished} not sent); node saw ${victim.replicator.stats.gossipIn} records, ${victim.replicator.stats.invalidInputs} invalid inputs`)
    expect(published).toBeGreaterThanOrEqual(INPUTS)
    expect(victim.replicator.stats.invalidInputs).toBeGreaterThan(INPUTS / 10)
    expect(await replicaState(victim)).toEqual(before)
    await victim.store.write([{ op: 'patch', ns: 'canary', id: 'a', value: { w: 3 } }])
    expect((await victim.store.get('canary', 'a')).value).toEqual({ v: 1, w: 3 })
  })
})
