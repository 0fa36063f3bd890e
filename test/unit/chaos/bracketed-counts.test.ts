import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { bracketedCounts } from '../../../scripts/chaos/checker.ts'

const SEED = Number(process.env.MESHSYNC_SEED ?? 20261127)

/** Occurrences of `token` in `text`, overlaps included: what the checker used to compute by splitting. */
function occurrences(text: string, token: string): number {
  let n = 0
  for (let at = text.indexOf(token); at !== -1; at = text.indexOf(token, at + 1)) n++
  return n
}

describe('bracketedCounts', () => {
  it('counts every bracket-free token exactly as a substring search does, in texts with noise and stray brackets', () => {
    const token = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 30 })).map(([node, k]) => `[n${node}.${k}]`)
    const piece = fc.oneof(token, token, token, fc.constantFrom('[', ']', '[[', ']]', 'x', '.', 'n1', '[n1.', '.2]'), fc.string({ maxLength: 4 }))
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), fc.array(token, { minLength: 1, maxLength: 10 }), (pieces, absent) => {
        const text = pieces.join('')
        const counts = bracketedCounts(text)
        // Every token the text was built from (some merged with the noise around them), and others.
        const probes = new Set([...pieces.filter((p) => /^\[n\d\.\d+\]$/.test(p)), ...absent])
        for (const t of probes) expect(counts.get(t) ?? 0).toBe(occurrences(text, t))
      }),
      { seed: SEED, numRuns: 500 },
    )
  })
})
