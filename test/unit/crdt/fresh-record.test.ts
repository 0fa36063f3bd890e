import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import {
  createEntityDoc,
  decodeFreshRecord,
  freshRecordEdit,
  patchRecord,
  readRecord,
  replaceRecord,
  spliceText,
  ValidationError,
  type JsonRecord,
} from '../../../crdt/index.ts'
import { mutate, mutationArb, patchArb, replaceArb } from './arbitraries.ts'

const SEED = 7

/** Client ids across the whole range Yjs draws from (uint32), small ones included. */
const clientIdArb = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }))

/** Values whose encodings differ in Yjs's writeAny: ints, floats that fit float32 and those that do not, -0, big ints. */
const numberEdgeArb = fc.constantFrom(0, -0, 1, -1, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 0.5, 1.1, 1e300, -1e-300, Number.MAX_SAFE_INTEGER)
const numbersArb: fc.Arbitrary<JsonRecord> = fc.dictionary(fc.constantFrom('a', 'b', '0', '10', 'x y'), numberEdgeArb, { maxKeys: 5, noNullPrototype: true })

/** What the store did for a new entity before the fast path: an edit on an empty Y.Doc. */
function viaYjs(clientID: number, record: JsonRecord, mode: 'put' | 'patch'): { doc: Y.Doc; update: Uint8Array | null; fields: string[]; texts: string[] } {
  const doc = createEntityDoc(undefined, clientID)
  const edit = mode === 'put' ? replaceRecord(doc, record) : patchRecord(doc, record)
  return { doc, ...edit }
}

function expectSameAsYjs(clientID: number, record: JsonRecord, mode: 'put' | 'patch'): void {
  const fast = freshRecordEdit(clientID, record, mode)
  const slow = viaYjs(clientID, record, mode)
  expect(fast.edit.update).toEqual(slow.update)
  expect(fast.edit.fields).toEqual(slow.fields)
  expect(fast.edit.texts).toEqual(slow.texts)
  expect(fast.state).toEqual(Y.encodeStateAsUpdate(slow.doc))
  // Same record, same key order (Y.Map keeps insertion order, reads list it that way).
  const held = readRecord(slow.doc)
  expect(Object.keys(fast.value)).toEqual(Object.keys(held))
  expect(fast.value).toEqual(held)
}

describe('freshRecordEdit (a new entity written without a Y.Doc)', () => {
  it('gives the update, state, fields and record Yjs gives for a put on an empty document', () => {
    fc.assert(
      fc.property(clientIdArb, replaceArb, (clientID, record) => expectSameAsYjs(clientID, record, 'put')),
      { seed: SEED, numRuns: 400 },
    )
  })

  it('gives what Yjs gives for a patch on an empty document (nulls remove nothing)', () => {
    fc.assert(
      fc.property(clientIdArb, patchArb, (clientID, record) => expectSameAsYjs(clientID, record, 'patch')),
      { seed: SEED, numRuns: 400 },
    )
  })

  it('encodes every kind of number as Yjs does', () => {
    fc.assert(
      fc.property(clientIdArb, numbersArb, (clientID, record) => expectSameAsYjs(clientID, record, 'put')),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('leaves a state that later edits continue from as if Yjs had made it', () => {
    fc.assert(
      fc.property(clientIdArb, replaceArb, patchArb, (clientID, first, second) => {
        const loaded = createEntityDoc(freshRecordEdit(clientID, first, 'put').state, clientID)
        const built = viaYjs(clientID, first, 'put').doc
        const a = patchRecord(loaded, second)
        const b = patchRecord(built, second)
        expect(a.update).toEqual(b.update)
        expect(Y.encodeStateAsUpdate(loaded)).toEqual(Y.encodeStateAsUpdate(built))
        expect(readRecord(loaded)).toEqual(readRecord(built))
      }),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('an empty record makes no update and the empty state', () => {
    expect(freshRecordEdit(5, {}, 'put')).toEqual({ edit: { update: null, fields: [], texts: [] }, value: {}, state: Y.encodeStateAsUpdate(new Y.Doc()) })
    expect(freshRecordEdit(5, { a: null }, 'patch').edit.update).toBeNull()
  })

  it('refuses what replaceRecord refuses', () => {
    const bad: JsonRecord[] = [{ s: 'lone \ud800' }, JSON.parse('{"__proto__": 1}') as JsonRecord, { ['f'.repeat(2000)]: 1 }]
    for (const record of bad) {
      expect(() => freshRecordEdit(1, record, 'put')).toThrow(ValidationError)
      expect(() => replaceRecord(createEntityDoc(), record)).toThrow(ValidationError)
    }
  })
})

/**
 * Soundness of the remote fast path: whenever decodeFreshRecord answers, applying the update to
 * an empty document gives exactly that record, and the document's state is the update itself.
 */
function expectSoundDecode(update: Uint8Array): boolean {
  const decoded = decodeFreshRecord(update)
  if (decoded === undefined) return false
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  expect(doc.store.pendingStructs).toBeNull()
  const held = readRecord(doc)
  expect(Object.keys(decoded.value)).toEqual(Object.keys(held))
  expect(decoded.value).toEqual(held)
  expect(Y.encodeStateAsUpdate(doc)).toEqual(update)
  return true
}

/** Updates Yjs makes for other edits: patches and puts on a non-empty document, texts, both mixed. */
const otherUpdateArb = fc
  .record({ clientID: clientIdArb, first: replaceArb, then: fc.oneof(patchArb, replaceArb), text: fc.string({ maxLength: 5 }), pick: fc.nat(3) })
  .map(({ clientID, first, then, text, pick }) => {
    const doc = createEntityDoc(undefined, clientID)
    const a = replaceRecord(doc, first).update
    const b = patchRecord(doc, then).update
    const c = text.length > 0 ? spliceText(doc, 'body', [[0, 0, text]]).update : null
    return [a, b, c, Y.encodeStateAsUpdate(doc)][pick] ?? new Uint8Array(0)
  })

describe('decodeFreshRecord (a remote new entity applied without a Y.Doc)', () => {
  it('reads back every fresh put, client id and record', () => {
    fc.assert(
      fc.property(clientIdArb, replaceArb, (clientID, record) => {
        const { update } = freshRecordEdit(clientID, record, 'put').edit
        if (update === null) return
        expect(decodeFreshRecord(update)).toEqual({ clientID, value: record })
        expect(expectSoundDecode(update)).toBe(true)
      }),
      { seed: SEED, numRuns: 300 },
    )
  })

  it('is sound on the updates of other edits: answers only when the update is a fresh record', () => {
    let answered = 0
    fc.assert(
      fc.property(otherUpdateArb, (update) => {
        if (expectSoundDecode(update)) answered++
      }),
      { seed: SEED, numRuns: 400 },
    )
    // The first put of a record is one of the picks: the fast path is taken for some, not all.
    expect(answered).toBeGreaterThan(20)
    expect(answered).toBeLessThan(400)
  })

  it('never throws on damaged updates, and stays sound on those it answers', () => {
    fc.assert(
      fc.property(clientIdArb, replaceArb, mutationArb, (clientID, record, m) => {
        const { update } = freshRecordEdit(clientID, record, 'put').edit
        const bad = mutate(update ?? new Uint8Array(0), m)
        let decoded: ReturnType<typeof decodeFreshRecord>
        expect(() => (decoded = decodeFreshRecord(bad))).not.toThrow()
        if (decoded !== undefined) expectSoundDecode(bad)
      }),
      { seed: SEED, numRuns: 500 },
    )
  })

  it('refuses a key written twice and a record replaceRecord would refuse', () => {
    const doc = createEntityDoc(undefined, 3)
    doc.transact(() => {
      doc.getMap('data').set('a', 1)
      doc.getMap('data').set('a', 2)
    })
    expect(decodeFreshRecord(Y.encodeStateAsUpdate(doc))).toBeUndefined()
    const forged = new Y.Doc()
    forged.clientID = 9
    forged.getMap('data').set('s', 'x')
    const update = Y.encodeStateAsUpdate(forged)
    expect(decodeFreshRecord(update)).toEqual({ clientID: 9, value: { s: 'x' } })
    expect(decodeFreshRecord(update.subarray(0, update.length - 1))).toBeUndefined()
    expect(decodeFreshRecord(Uint8Array.from([...update, 0]))).toBeUndefined()
  })
})
