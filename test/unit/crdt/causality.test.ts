import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  advanceHeads,
  compareDots,
  happenedBefore,
  isConcurrent,
  isDeletedByHeads,
  type Head,
} from '../../../crdt/index.ts'
import { dotKey, historyArb, prng, shuffle, simulate, type SimChange } from './arbitraries.ts'

const SEED = 42

/** Folds changes into heads, starting from none. */
const headsOf = (changes: readonly Head[]): Head[] => changes.reduce<Head[]>((heads, c) => advanceHeads(heads, c), [])

/** Brute force: the changes no other change of the set saw, by the simulator's ground truth. */
function modelHeads(all: readonly SimChange[]): string[] {
  return all
    .filter((c) => !all.some((d) => d !== c && d.seen.has(dotKey(c))))
    .map(dotKey)
    .sort()
}

const keys = (heads: readonly Head[]): string[] => heads.map(dotKey).sort()

describe('causal order of changes', () => {
  it('happenedBefore and isConcurrent agree with what each writer had actually seen', () => {
    let concurrentPairs = 0
    let orderedPairs = 0
    fc.assert(
      fc.property(historyArb(), (h) => {
        const all = simulate(h)
        for (const a of all) {
          for (const b of all) {
            const truth = b.seen.has(dotKey(a))
            expect(happenedBefore(a, b)).toBe(truth)
            if (a === b) {
              expect(isConcurrent(a, b)).toBe(false)
              continue
            }
            const concurrent = !truth && !a.seen.has(dotKey(b))
            expect(isConcurrent(a, b)).toBe(concurrent)
            expect(isConcurrent(b, a)).toBe(concurrent)
            if (concurrent) concurrentPairs++
            else orderedPairs++
          }
        }
      }),
      { seed: SEED, numRuns: 300 },
    )
    expect(concurrentPairs).toBeGreaterThan(100)
    expect(orderedPairs).toBeGreaterThan(100)
  })
})

describe('advanceHeads', () => {
  it('gives the same heads whatever order (and duplication) the changes arrive in', () => {
    fc.assert(
      fc.property(historyArb(), fc.integer(), (h, seed) => {
        const all = simulate(h)
        const rand = prng(seed)
        const reference = headsOf(all)
        for (let round = 0; round < 6; round++) {
          const delivered = shuffle(all, rand)
          // Redeliver a random handful, at random places.
          for (let i = 0; i < 3 && all.length > 0; i++) {
            delivered.splice(Math.floor(rand() * (delivered.length + 1)), 0, all[Math.floor(rand() * all.length)] as SimChange)
          }
          expect(headsOf(delivered)).toEqual(reference)
        }
      }),
      { seed: SEED, numRuns: 300 },
    )
  })

  it('heads are exactly the maximal changes, sorted by dot', () => {
    let multiHead = 0
    fc.assert(
      fc.property(historyArb(), fc.integer(), (h, seed) => {
        const all = simulate(h)
        const heads = headsOf(shuffle(all, prng(seed)))
        expect(keys(heads)).toEqual(modelHeads(all))
        expect(heads).toEqual([...heads].sort(compareDots))
        if (heads.length > 1) multiHead++
        // Heads are pairwise concurrent, and every other change happened before some head.
        for (const a of heads) for (const b of heads) if (a !== b) expect(isConcurrent(a, b)).toBe(true)
        for (const c of all) {
          if (!heads.includes(c)) expect(heads.some((hd) => happenedBefore(c, hd))).toBe(true)
        }
      }),
      { seed: SEED, numRuns: 300 },
    )
    expect(multiHead).toBeGreaterThan(30)
  })

  it('does not mutate its input and ignores a change already known or already seen', () => {
    fc.assert(
      fc.property(historyArb(), (h) => {
        const all = simulate(h)
        const heads = headsOf(all)
        const frozen = Object.freeze([...heads])
        for (const c of all) {
          const next = advanceHeads(frozen, c)
          if (heads.includes(c) || heads.some((hd) => happenedBefore(c, hd))) expect(next).toEqual(heads)
        }
        expect(frozen).toEqual(heads)
      }),
      { seed: SEED, numRuns: 200 },
    )
  })
})

describe('isDeletedByHeads', () => {
  const head = (origin: string, seq: number, op: 'upsert' | 'delete', context: Record<string, number>): Head => ({
    origin,
    seq,
    op,
    context,
    fields: op === 'delete' ? [] : ['f'],
  })

  it('is true exactly when there are heads and all of them are deletes', () => {
    fc.assert(
      fc.property(historyArb(), (h) => {
        const all = simulate(h)
        const heads = headsOf(all)
        const maximal = all.filter((c) => modelHeads(all).includes(dotKey(c)))
        expect(isDeletedByHeads(heads)).toBe(maximal.length > 0 && maximal.every((c) => c.op === 'delete'))
      }),
      { seed: SEED, numRuns: 300 },
    )
  })

  it('follows the delete rules of docs/architecture.md (Data model)', () => {
    const create = head('a', 1, 'upsert', {})
    const del = head('a', 2, 'delete', { a: 1 })
    const concurrentUpdate = head('b', 1, 'upsert', { a: 1 })
    const writeAfterDelete = head('b', 2, 'upsert', { a: 2, b: 1 })
    const otherDelete = head('c', 1, 'delete', { a: 1 })

    expect(isDeletedByHeads([])).toBe(false) // never written
    expect(isDeletedByHeads(headsOf([create]))).toBe(false)
    expect(isDeletedByHeads(headsOf([create, del]))).toBe(true) // sequential delete
    expect(isDeletedByHeads(headsOf([del, create]))).toBe(true) // late arrival of what it saw
    expect(isDeletedByHeads(headsOf([create, del, concurrentUpdate]))).toBe(false) // update wins
    expect(isDeletedByHeads(headsOf([create, concurrentUpdate, del]))).toBe(false)
    expect(isDeletedByHeads(headsOf([create, del, writeAfterDelete]))).toBe(false) // recreated
    expect(isDeletedByHeads(headsOf([create, del, otherDelete]))).toBe(true) // concurrent deletes
  })
})
