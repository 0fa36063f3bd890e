import { describe, expect, it } from 'vitest'
import { check, type NodeState } from '../../../scripts/chaos/checker.ts'
import type { OpRecord, VersionVector } from '../../../scripts/chaos/workload.ts'

/**
 * The chaos checker on hand-made histories: a live entity with no field is explained only by a
 * put of {} that came after (or concurrently with) the delete it outlived.
 */

let seq = 0
const op = (node: number, kind: OpRecord['kind'], fields: Record<string, string> | undefined, version: VersionVector, t0: number): OpRecord => ({
  seq: ++seq,
  node,
  nodeId: `node${node}`,
  kind,
  ns: 'shr',
  id: 's3',
  ...(fields && { fields }),
  t0,
  t1: t0 + 5,
  outcome: 'ok',
  version,
})

const stateWith = (value: Record<string, unknown>, version: VersionVector): NodeState => ({
  node: 0,
  versionVector: version,
  counts: { shr: 1 },
  entities: { shr: { s3: { id: 's3', value, version } } },
  conflicts: [],
  texts: {},
})

describe('chaos checker: deletes and empty records', () => {
  it('accepts an entity kept alive as {} by a put of {} made after the delete', () => {
    const history = [
      op(0, 'put', { f0: 'n0.1' }, { node0: 1 }, 0),
      op(1, 'delete', undefined, { node0: 1, node1: 1 }, 10),
      op(0, 'put', {}, { node0: 2, node1: 1 }, 20),
    ]
    const result = check(history, [stateWith({}, { node0: 2, node1: 1 })])
    expect(result.lostSamples).toEqual([])
    expect(result.ok).toBe(true)
  })

  it('accepts a put of {} concurrent with the delete (the update wins)', () => {
    const history = [op(0, 'put', { f0: 'n0.1' }, { node0: 1 }, 0), op(1, 'delete', undefined, { node0: 1, node1: 1 }, 10), op(0, 'put', {}, { node0: 2 }, 10)]
    expect(check(history, [stateWith({}, { node0: 2, node1: 1 })]).lost).toBe(0)
  })

  it('still fails an entity live as {} when every put of {} came before the delete', () => {
    const history = [op(0, 'put', {}, { node0: 1 }, 0), op(1, 'delete', undefined, { node0: 1, node1: 1 }, 10)]
    const result = check(history, [stateWith({}, { node0: 1, node1: 1 })])
    expect(result.lost).toBe(1)
    expect(result.lostSamples[0]).toMatch(/s3 is live \(\{\}\) though acknowledged delete/)
  })

  it('does not let a put of {} excuse a field an earlier write left behind a delete', () => {
    const history = [
      op(0, 'put', { f0: 'n0.1' }, { node0: 1 }, 0),
      op(1, 'delete', undefined, { node0: 1, node1: 1 }, 10),
      op(0, 'put', {}, { node0: 2, node1: 1 }, 20),
    ]
    // f0 = n0.1 survived both the delete and the put of {} that saw it: lost writes.
    expect(check(history, [stateWith({ f0: 'n0.1' }, { node0: 2, node1: 1 })]).ok).toBe(false)
  })
})
