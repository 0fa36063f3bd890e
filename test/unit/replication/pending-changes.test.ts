import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ChangeRecord, VersionVector } from '../../../crdt/index.ts'
import { PendingChanges } from '../../../daemon/replication/pending-changes.ts'
import { shuffle, prng } from '../crdt/arbitraries.ts'

function change(origin: string, seq: number, context: VersionVector = {}): ChangeRecord {
  return { origin, seq, ns: 'ns', id: `${origin}${seq}`, op: 'upsert', context, fields: [], texts: [], update: new Uint8Array(0), time: 0 }
}

describe('PendingChanges.deliverable', () => {
  it('returns only what can apply now, in causal order, and nothing that waits', () => {
    const p = new PendingChanges(100)
    // b2 needs a1; a1 needs a... nothing; c3 waits for c2 (missing).
    p.add([change('b', 2, { a: 1 }), change('c', 3), change('a', 1), change('b', 1)], {})
    const out = p.deliverable({}).map((c) => `${c.origin}${c.seq}`)
    expect(out).toContain('a1')
    expect(out).toContain('b1')
    expect(out).toContain('b2')
    expect(out).not.toContain('c3')
    expect(out.indexOf('a1')).toBeLessThan(out.indexOf('b2'))
    expect(out.indexOf('b1')).toBeLessThan(out.indexOf('b2'))
    expect(p.deliverable({}, 2)).toHaveLength(2)
    expect(p.deliverable({ a: 1, b: 2 }).map((c) => `${c.origin}${c.seq}`)).toEqual([])
  })

  it('on random causal histories delivered in random order, everything becomes deliverable exactly when its predecessors are', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.boolean()), { minLength: 1, maxLength: 40 }), fc.integer(), (steps, seed) => {
        // A causal history: each change's context is everything made before it on a random prefix.
        const vv: Record<string, number> = {}
        const all: ChangeRecord[] = []
        for (const [origin, sawAll] of steps) {
          const seq = (vv[origin] ?? 0) + 1
          const context = sawAll ? { ...vv } : { [origin]: seq - 1 }
          if (context[origin] === 0) delete context[origin]
          all.push(change(origin, seq, context))
          vv[origin] = seq
        }
        const p = new PendingChanges(1000)
        const have: Record<string, number> = {}
        const applied: ChangeRecord[] = []
        for (const c of shuffle(all, prng(seed))) {
          p.add([c], have)
          for (const ready of p.deliverable(have)) {
            // Every delivered change is its origin's next one and its context is here.
            expect(ready.seq).toBe((have[ready.origin] ?? 0) + 1)
            for (const [o, s] of Object.entries(ready.context)) expect(have[o] ?? 0).toBeGreaterThanOrEqual(s)
            have[ready.origin] = ready.seq
            applied.push(ready)
          }
          p.prune(have)
        }
        expect(applied).toHaveLength(all.length)
        expect(p.size).toBe(0)
      }),
      { seed: 4242, numRuns: 300 },
    )
  })
})
