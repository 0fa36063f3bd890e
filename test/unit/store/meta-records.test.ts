import { describe, expect, it } from 'vitest'
import { META_CLIENT_IDS, META_COUNTS, META_FEED_FLOOR, META_FEED_SEQ, META_GC_HORIZON, META_LOG_FLOOR, META_NODE_VV, META_REMOVED } from '../../../daemon/store/keys.ts'
import {
  clientIdsRecord,
  countsRecord,
  feedFloorRecord,
  feedSeqRecord,
  gcHorizonRecord,
  logFloorRecord,
  nodeVvRecord,
  readNodeRecords,
  removedRecord,
  type MetaRecord,
} from '../../../daemon/store/meta-records.ts'

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8')

describe('node records (the m keys)', () => {
  it('each record keeps its key, and stores the bytes the data dir format holds', () => {
    const cases: [MetaRecord<never>, string, unknown, string][] = [
      [nodeVvRecord as MetaRecord<never>, META_NODE_VV, { a: 3, b: 1 }, '{"a":3,"b":1}'],
      [feedSeqRecord as MetaRecord<never>, META_FEED_SEQ, 42, '42'],
      [clientIdsRecord as MetaRecord<never>, META_CLIENT_IDS, [7, 9], '[7,9]'],
      [countsRecord as MetaRecord<never>, META_COUNTS, { notes: 2 }, '{"notes":2}'],
      [logFloorRecord as MetaRecord<never>, META_LOG_FLOOR, { a: 1 }, '{"a":1}'],
      [gcHorizonRecord as MetaRecord<never>, META_GC_HORIZON, { notes: { a: 4 } }, '{"notes":{"a":4}}'],
      [feedFloorRecord as MetaRecord<never>, META_FEED_FLOOR, { notes: 12 }, '{"notes":12}'],
      [removedRecord as MetaRecord<never>, META_REMOVED, { notes: 13 }, '{"notes":13}'],
    ]
    for (const [record, key, value, bytes] of cases) {
      expect(record.key).toBe(key)
      expect(text(record.encode(value as never))).toBe(bytes)
      const op = record.put(value as never)
      expect(op.type === 'put' && op.key === key && text(op.value)).toBe(bytes)
      expect(record.decode(Buffer.from(bytes, 'utf8'))).toEqual(value)
    }
  })

  it('an absent record reads as its empty value, a fresh one each time', () => {
    expect(nodeVvRecord.decode(undefined)).toEqual({})
    expect(feedSeqRecord.decode(undefined)).toBe(0)
    expect(clientIdsRecord.decode(undefined)).toEqual([])
    const marks = removedRecord.decode(undefined)
    marks['notes'] = 1
    expect(removedRecord.decode(undefined)).toEqual({})
  })

  it('readNodeRecords reads every record the committer starts from', async () => {
    const stored = new Map<string, Uint8Array>([
      [META_NODE_VV, nodeVvRecord.encode({ a: 5 })],
      [META_FEED_SEQ, feedSeqRecord.encode(17)],
      [META_CLIENT_IDS, clientIdsRecord.encode([3])],
      [META_GC_HORIZON, gcHorizonRecord.encode({ notes: { a: 2 } })],
    ])
    const reader = {
      get: (key: string) => Promise.resolve(stored.get(key)),
      getMany: (keys: readonly string[]) => Promise.resolve(keys.map((key) => stored.get(key))),
      iterate: () => (async function* () {})(),
    }
    expect(await readNodeRecords(reader)).toEqual({
      nodeVv: { a: 5 },
      feedSeq: 17,
      clientIds: [3],
      counts: {},
      logFloor: {},
      horizon: { notes: { a: 2 } },
      feedFloor: {},
    })
  })
})
