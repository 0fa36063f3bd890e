import fc from 'fast-check'
import * as encoding from 'lib0/encoding'
import { describe, expect, it } from 'vitest'
import { encodeReusing } from '../../../crdt/index.ts'

const SEED = 7

/** One lib0 write, as data, so that the same sequence can be replayed on two encoders. */
type Write = { kind: 'uint8'; v: number } | { kind: 'varUint'; v: number } | { kind: 'string'; v: string } | { kind: 'bytes'; v: Uint8Array } | { kind: 'any'; v: unknown }

const writeArb: fc.Arbitrary<Write> = fc.oneof(
  fc.record({ kind: fc.constant('uint8' as const), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('varUint' as const), v: fc.nat() }),
  fc.record({ kind: fc.constant('string' as const), v: fc.string({ unit: 'binary', maxLength: 200 }) }),
  // Up to 90 KiB: past the reused buffer's 64 KiB, so that it has to grow.
  fc.record({ kind: fc.constant('bytes' as const), v: fc.integer({ min: 0, max: 90 * 1024 }).map((n) => new Uint8Array(n).map((_, i) => (i * 31) & 0xff)) }),
  fc.record({ kind: fc.constant('any' as const), v: fc.jsonValue({ maxDepth: 3 }) }),
)

function replay(e: encoding.Encoder, writes: readonly Write[]): void {
  for (const w of writes) {
    if (w.kind === 'uint8') encoding.writeUint8(e, w.v)
    else if (w.kind === 'varUint') encoding.writeVarUint(e, w.v)
    else if (w.kind === 'string') encoding.writeVarString(e, w.v)
    else if (w.kind === 'bytes') encoding.writeVarUint8Array(e, w.v)
    else encoding.writeAny(e, w.v as Parameters<typeof encoding.writeAny>[1])
  }
}

const fresh = (writes: readonly Write[]): Uint8Array => encoding.encode((e) => replay(e, writes))

describe('encodeReusing', () => {
  it('writes exactly what a fresh lib0 encoder writes, encoding after encoding, small and large in any order', () => {
    fc.assert(
      fc.property(fc.array(fc.array(writeArb, { maxLength: 12 }), { minLength: 1, maxLength: 6 }), (encodings) => {
        const results = encodings.map((writes) => encodeReusing((e) => replay(e, writes)))
        // Compared only after all of them ran: each result is the caller's own copy, untouched by
        // the encodings after it.
        encodings.forEach((writes, i) => expect(results[i]).toEqual(fresh(writes)))
      }),
      { seed: SEED, numRuns: 300 },
    )
  })

  it('a write that throws leaves nothing behind for the next encoding', () => {
    const broken = (): Uint8Array =>
      encodeReusing((e) => {
        encoding.writeVarString(e, 'half written')
        encoding.writeVarUint8Array(e, new Uint8Array(100 * 1024))
        throw new Error('refused midway')
      })
    expect(broken).toThrow('refused midway')
    expect(encodeReusing((e) => encoding.writeVarUint(e, 300))).toEqual(new Uint8Array([0xac, 0x02]))
  })

  it('an encoding started inside another gets its own encoder', () => {
    const outer = encodeReusing((e) => {
      encoding.writeVarString(e, 'outer')
      const inner = encodeReusing((i) => encoding.writeVarString(i, 'inner'))
      encoding.writeVarUint8Array(e, inner)
    })
    expect(outer).toEqual(
      encoding.encode((e) => {
        encoding.writeVarString(e, 'outer')
        encoding.writeVarUint8Array(e, encoding.encode((i) => encoding.writeVarString(i, 'inner')))
      }),
    )
  })
})
