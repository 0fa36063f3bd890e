import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CodecError, decodeEntitySnapshot, encodeEntitySnapshot, type EntitySnapshot } from '../../../crdt/index.ts'
import { decodeFrame, encodeFrame, FRAME_HELLO, type HelloFrame } from '../../../transport/index.ts'
import { namespaceArb, nodeIdArb, vectorArb } from '../crdt/arbitraries.ts'

const SEED = 7117

const helloArb: fc.Arbitrary<HelloFrame> = fc
  .record({
    nodeId: nodeIdArb,
    vv: vectorArb,
    gc: fc.option(
      fc.record({
        acks: fc.array(fc.record({ nodeId: nodeIdArb, vv: vectorArb, at: fc.maxSafeNat() }), { maxLength: 5 }),
        horizon: fc.dictionary(namespaceArb, vectorArb, { maxKeys: 4 }),
      }),
      { nil: undefined },
    ),
  })
  .map(({ gc, ...h }) => ({ type: FRAME_HELLO, version: 1, ...h, ...(gc && { gc }) }))

describe('HELLO frame with the tombstone-GC extension', () => {
  it('round-trips with and without the extension', () => {
    fc.assert(
      fc.property(helloArb, (hello) => {
        expect(decodeFrame(encodeFrame(hello))).toEqual(hello)
      }),
      { seed: SEED, numRuns: 500 },
    )
  })

  it('every truncation of an extended HELLO is a CodecError, never a wrong frame', () => {
    fc.assert(
      fc.property(helloArb, (hello) => {
        const bytes = encodeFrame(hello)
        const plain = encodeFrame({ type: FRAME_HELLO, version: hello.version, nodeId: hello.nodeId, vv: hello.vv })
        for (let n = plain.length + 1; n < bytes.length; n++) expect(() => decodeFrame(bytes.subarray(0, n))).toThrow(CodecError)
      }),
      { seed: SEED, numRuns: 200 },
    )
  })
})

describe('entity snapshot incarnation (format 2)', () => {
  const base: EntitySnapshot = { ns: 'ns', id: 'x', state: new Uint8Array([0, 0]), vv: { a: 2 }, heads: [], fieldHeads: {}, updatedAt: 5 }
  it('is written only when there is one, and read back', () => {
    expect(encodeEntitySnapshot(base)[0]).toBe(1)
    expect(decodeEntitySnapshot(encodeEntitySnapshot(base))).toEqual(base)
    const withInc = { ...base, incarnation: { origin: 'b', seq: 7 } }
    expect(encodeEntitySnapshot(withInc)[0]).toBe(2)
    expect(decodeEntitySnapshot(encodeEntitySnapshot(withInc))).toEqual(withInc)
  })

  it('refuses a bad incarnation', () => {
    const bytes = encodeEntitySnapshot({ ...base, incarnation: { origin: 'b', seq: 7 } })
    expect(() => decodeEntitySnapshot(bytes.subarray(0, bytes.length - 1))).toThrow(CodecError)
    const zeroSeq = bytes.slice()
    zeroSeq[zeroSeq.length - 1] = 0
    expect(() => decodeEntitySnapshot(zeroSeq)).toThrow(CodecError)
  })
})
