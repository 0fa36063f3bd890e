import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compareKeys, toStoredKey } from '../../../daemon/storage/index.ts'

const utf8Order = (a: string, b: string): number => Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))

describe('compareKeys', () => {
  it('puts astral characters after U+E000..U+FFFF, unlike JS <', () => {
    expect('😀' < '\uffff').toBe(true)
    expect(compareKeys('😀', '\uffff')).toBeGreaterThan(0)
    expect(compareKeys('\ud7ff', '😀')).toBeLessThan(0)
    expect(compareKeys('a', 'a\u0000')).toBeLessThan(0)
    expect(compareKeys('a\u0000', 'a')).toBeGreaterThan(0)
    expect(compareKeys('ab', 'ab')).toBe(0)
  })

  it('equals UTF-8 byte order on well-formed strings (fast-check, fixed seed)', () => {
    const str = fc.string({ unit: 'binary', maxLength: 6 })
    fc.assert(
      fc.property(str, str, (a, b) => {
        expect(Math.sign(compareKeys(a, b))).toBe(utf8Order(a, b))
      }),
      { seed: 7, numRuns: 2000 },
    )
  })
})

describe('toStoredKey', () => {
  it('replaces lone surrogates with U+FFFD and keeps pairs', () => {
    expect(toStoredKey('a\ud800b\udc00😀')).toBe('a\ufffdb\ufffd😀')
    expect(toStoredKey('\udc00\ud800')).toBe('\ufffd\ufffd')
    expect(toStoredKey('plain')).toBe('plain')
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0xd7f0, max: 0xe010 }).map((c) => String.fromCharCode(c)), maxLength: 6 }), (s) => {
        expect(toStoredKey(s)).toBe(Buffer.from(s, 'utf8').toString('utf8'))
      }),
      { seed: 11, numRuns: 1000 },
    )
  })
})
