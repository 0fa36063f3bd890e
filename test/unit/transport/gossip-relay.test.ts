import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CodecError } from '../../../crdt/index.ts'
import { decodeRelayMessage, encodeRelayMessage, GossipRelay, linksMaxAgeMs, RELAY_HEADS, RELAY_LINKS, type RelayMessage } from '../../../transport/index.ts'
import { nodeIdArb } from '../crdt/arbitraries.ts'

const SEED = Number(process.env.MESHSYNC_SEED ?? 4242)

const relayArb: fc.Arbitrary<RelayMessage> = fc.oneof(
  fc.record({ type: fc.constant(RELAY_LINKS), origin: nodeIdArb, reaches: fc.array(nodeIdArb, { maxLength: 20 }) }),
  fc.record({ type: fc.constant(RELAY_HEADS), heads: fc.array(fc.record({ origin: nodeIdArb, seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }) }), { maxLength: 20 }) }),
)

describe('relay messages (links and heads)', () => {
  it('round-trip', () => {
    fc.assert(
      fc.property(relayArb, (message) => {
        expect(decodeRelayMessage(encodeRelayMessage(message))).toEqual(message)
      }),
      { seed: SEED, numRuns: 300 },
    )
  })

  it('refuse anything malformed with a CodecError and nothing else: truncated, extended, random bytes', () => {
    fc.assert(
      fc.property(relayArb, fc.uint8Array({ maxLength: 40 }), fc.nat(), (message, junk, cut) => {
        const bytes = encodeRelayMessage(message)
        const variants = [bytes.subarray(0, cut % bytes.length), new Uint8Array([...bytes, ...junk, 0]), junk]
        for (const variant of variants) {
          try {
            decodeRelayMessage(variant)
          } catch (error) {
            expect(error).toBeInstanceOf(CodecError)
          }
        }
        expect(() => decodeRelayMessage(new Uint8Array([...bytes, 0]))).toThrow(CodecError)
      }),
      { seed: SEED, numRuns: 300 },
    )
    expect(() => decodeRelayMessage(new Uint8Array([RELAY_HEADS, 1, 16, ...new TextEncoder().encode('0123456789abcdef'), 0]))).toThrow('invalid seq')
    expect(() => decodeRelayMessage(new Uint8Array([9]))).toThrow('unknown relay message type')
  })
})

describe('GossipRelay: whether a received change goes on to the mesh', () => {
  const [o, v, p, q] = ['000000000000000a', '000000000000000b', '000000000000000c', '000000000000000d']

  it('forwards while the origin has not said whom it reaches, as gossipsub would', () => {
    const relay = new GossipRelay()
    expect(relay.shouldForward({ origin: o, seq: 1 }, v, [v, p], [v, p])).toBe(true)
    expect(relay.stats).toEqual({ forwarded: 1, withheld: 0 })
  })

  it('withholds when the origin reaches every mesh peer but the sender; forwards when one is not reached', () => {
    const relay = new GossipRelay()
    relay.learn(o, [v, p])
    expect(relay.shouldForward({ origin: o, seq: 1 }, v, [o, v, p], [o, v, p])).toBe(false)
    expect(relay.shouldForward({ origin: o, seq: 2 }, v, [o, v, p, q], [o, v, p, q])).toBe(true)
    // A newer announcement replaces the older one.
    relay.learn(o, [v, p, q])
    expect(relay.shouldForward({ origin: o, seq: 3 }, v, [o, v, p, q], [o, v, p, q])).toBe(false)
    relay.learn(o, [v])
    expect(relay.shouldForward({ origin: o, seq: 4 }, v, [o, v, p], [o, v, p])).toBe(true)
    expect(relay.stats).toEqual({ forwarded: 2, withheld: 2 })
  })

  it('forwards again once the origin has been silent longer than the links are trusted', () => {
    let now = 0
    const relay = new GossipRelay({ now: () => now })
    relay.learn(o, [p])
    expect(relay.shouldForward({ origin: o, seq: 1 }, o, [o, p], [o, p])).toBe(false)
    now = linksMaxAgeMs(0) + 1
    expect(relay.reachOf(o)).toBeUndefined()
    expect(relay.shouldForward({ origin: o, seq: 2 }, o, [o, p], [o, p])).toBe(true)
  })

  it('trusts links longer in a larger cluster, where each node announces them less often', () => {
    let now = 0
    let members = 3
    const relay = new GossipRelay({ now: () => now, members: () => members })
    relay.learn(o, [p])
    now = linksMaxAgeMs(3) + 1
    expect(relay.reachOf(o)).toBeUndefined()
    members = 47
    // 48 nodes each announcing every 2 minutes: a 40 s old announcement is still fresh.
    expect(linksMaxAgeMs(47)).toBeGreaterThan(linksMaxAgeMs(3))
    expect(relay.reachOf(o)).toEqual(new Set([p]))
  })

  it('hands out the heads of what it withheld once: the highest seq per origin', () => {
    const relay = new GossipRelay()
    relay.learn(o, [p])
    relay.learn(q, [p])
    for (const seq of [3, 1, 7, 5]) relay.shouldForward({ origin: o, seq }, o, [p], [p])
    relay.shouldForward({ origin: q, seq: 2 }, q, [p], [p])
    relay.shouldForward({ origin: v, seq: 9 }, v, [p], [p]) // forwarded: v said nothing
    expect(relay.takeWithheld()).toEqual([
      { origin: o, seq: 7 },
      { origin: q, seq: 2 },
    ])
    expect(relay.takeWithheld()).toEqual([])
  })

  it('with no subscriber but the sender and the origin, neither forwards nor counts anything as withheld', () => {
    const relay = new GossipRelay()
    relay.learn(o, [p])
    expect(relay.shouldForward({ origin: o, seq: 1 }, p, [o, p], [o, p])).toBe(false)
    expect(relay.shouldForward({ origin: o, seq: 2 }, v, [v], [v])).toBe(false)
    expect(relay.stats).toEqual({ forwarded: 0, withheld: 0 })
    expect(relay.takeWithheld()).toEqual([])
  })

  it('withholds from a subscriber outside the mesh, and hands out its head, even when the origin never announced', () => {
    const relay = new GossipRelay()
    expect(relay.shouldForward({ origin: o, seq: 4 }, o, [o], [o, p])).toBe(false)
    expect(relay.stats).toEqual({ forwarded: 0, withheld: 1 })
    expect(relay.takeWithheld()).toEqual([{ origin: o, seq: 4 }])
  })
})
