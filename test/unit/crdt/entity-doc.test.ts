import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import {
  MAX_FIELD_NAME_BYTES,
  ValidationError,
  applyEntityUpdate,
  clearEntity,
  createEntityDoc,
  hasPendingUpdates,
  patchRecord,
  readRecord,
  readText,
  replaceRecord,
  textNames,
  spliceText,
  type EntityEdit,
  type JsonRecord,
  type JsonValue,
  type TextSplice,
} from '../../../crdt/index.ts'
import { codeUnitStringArb, patchArb, prng, recordFieldArb, replaceArb, shuffle, unicodeStringArb, valueArb } from './arbitraries.ts'

const SEED = 42

// ---------------------------------------------------------------------------------------------
// Models and generators
// ---------------------------------------------------------------------------------------------

const isHigh = (u: number): boolean => u >= 0xd800 && u <= 0xdbff
const isLow = (u: number): boolean => u >= 0xdc00 && u <= 0xdfff
const wellFormed = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s
/** True when index `i` falls between the two halves of a surrogate pair. */
const splitsPair = (s: string, i: number): boolean => i > 0 && i < s.length && isHigh(s.charCodeAt(i - 1)) && isLow(s.charCodeAt(i))

/** JSON equality as the wire sees it (key order ignored, -0 equals 0). */
function jsonCanon(v: JsonValue): string {
  const canon = (x: JsonValue): unknown =>
    Array.isArray(x)
      ? ['array', ...x.map(canon)]
      : x !== null && typeof x === 'object'
        ? [
            'object',
            ...Object.keys(x)
              .sort()
              .map((k) => [k, canon(x[k] as JsonValue)]),
          ]
        : x
  return JSON.stringify(canon(v))
}


type RecordOp = { kind: 'replace'; record: JsonRecord } | { kind: 'patch'; patch: JsonRecord }
const recordOpArb: fc.Arbitrary<RecordOp> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), record: replaceArb }),
  fc.record({ kind: fc.constant('patch' as const), patch: patchArb }),
)
/** Record ops whose keys and strings may hold lone surrogates (JSON.parse can produce them). */
const rawValueArb: fc.Arbitrary<JsonValue> = fc.oneof(
  valueArb,
  codeUnitStringArb(4),
  fc.dictionary(codeUnitStringArb(3), codeUnitStringArb(3), { maxKeys: 2, noNullPrototype: true }),
)
const rawRecordOpArb: fc.Arbitrary<RecordOp> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), record: fc.dictionary(fc.oneof(recordFieldArb, codeUnitStringArb(3)), rawValueArb, { maxKeys: 3, noNullPrototype: true }) }),
  fc.record({ kind: fc.constant('patch' as const), patch: fc.dictionary(fc.oneof(recordFieldArb, codeUnitStringArb(3)), rawValueArb, { maxKeys: 3, noNullPrototype: true }) }),
)

/** Applies a record op to the model; returns the fields whose value changed. */
function applyRecordModel(model: Map<string, JsonValue>, op: RecordOp): string[] {
  const changed = new Set<string>()
  if (op.kind === 'replace') {
    for (const k of [...model.keys()]) {
      if (!Object.hasOwn(op.record, k)) {
        model.delete(k)
        changed.add(k)
      }
    }
    for (const [k, v] of Object.entries(op.record)) {
      if (!model.has(k) || jsonCanon(model.get(k) as JsonValue) !== jsonCanon(v)) changed.add(k)
      model.set(k, v)
    }
  } else {
    for (const [k, v] of Object.entries(op.patch)) {
      if (v === null) {
        if (model.delete(k)) changed.add(k)
      } else {
        if (!model.has(k) || jsonCanon(model.get(k) as JsonValue) !== jsonCanon(v)) changed.add(k)
        model.set(k, v)
      }
    }
  }
  return [...changed].sort()
}

const applyRecordOp = (doc: Y.Doc, op: RecordOp): EntityEdit =>
  op.kind === 'replace' ? replaceRecord(doc, op.record) : patchRecord(doc, op.patch)

/** Record of a doc compared as JSON (the wire's notion of equality). */
const canonRecord = (doc: Y.Doc): string => jsonCanon(readRecord(doc))
const canonModel = (model: Map<string, JsonValue>): string => jsonCanon(Object.fromEntries(model))

/**
 * A splice described relative to whatever text it meets: fractions of the length (so it is
 * usually in range), or a deliberately broken one.
 */
type SpliceSpec =
  | { kind: 'ok'; at: number; span: number; ins: string }
  | { kind: 'bad'; pos: number; del: number; ins: string }
const insertArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 5 }) },
  { weight: 2, arbitrary: unicodeStringArb(4) },
  { weight: 2, arbitrary: fc.constantFrom('', '😀', 'é\u0301', '\ud83d\ude00x') },
)
const okSpliceArb = fc.record({
  kind: fc.constant('ok' as const),
  at: fc.double({ min: 0, max: 1, noNaN: true }),
  span: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
  ins: insertArb,
})
const badSpliceArb = fc.record({
  kind: fc.constant('bad' as const),
  pos: fc.oneof(fc.integer({ min: -3, max: 40 }), fc.constantFrom(0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53)),
  del: fc.oneof(fc.integer({ min: -2, max: 40 }), fc.constantFrom(1.5, Number.NaN)),
  ins: fc.oneof(insertArb, codeUnitStringArb(3)),
})
/** In range, but the insert may hold lone surrogates. */
const rawInsertSpliceArb = fc.record({
  kind: fc.constant('ok' as const),
  at: fc.double({ min: 0, max: 1, noNaN: true }),
  span: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
  ins: fc.oneof(insertArb, codeUnitStringArb(3)),
})
const spliceSpecArb: fc.Arbitrary<SpliceSpec> = fc.oneof(
  { weight: 5, arbitrary: okSpliceArb },
  { weight: 1, arbitrary: rawInsertSpliceArb },
  { weight: 1, arbitrary: badSpliceArb },
)

/** Turns specs into concrete splices against `text`, as the earlier ones of the batch leave it. */
function materialize(text: string, specs: readonly SpliceSpec[], snap: boolean): TextSplice[] {
  let s = text
  const out: TextSplice[] = []
  for (const spec of specs) {
    let splice: TextSplice
    if (spec.kind === 'bad') {
      splice = [spec.pos, spec.del, spec.ins]
    } else {
      let pos = Math.min(s.length, Math.floor(spec.at * (s.length + 1)))
      if (snap && splitsPair(s, pos)) pos--
      let end = Math.min(s.length, pos + Math.floor(spec.span * (s.length - pos + 1)))
      if (snap && splitsPair(s, end)) end--
      splice = [pos, end - pos, spec.ins]
    }
    out.push(splice)
    const [pos, del, ins] = splice
    if (Number.isSafeInteger(pos) && Number.isSafeInteger(del) && pos >= 0 && del >= 0 && pos + del <= s.length) {
      s = s.slice(0, pos) + ins + s.slice(pos + del)
    }
  }
  return out
}

/**
 * The JS-string model of a splice batch: String splice semantics on UTF-16 code units; a
 * position outside the text or inside a surrogate pair is TEXT_RANGE, an insert that is not
 * well-formed text is INVALID_TEXT, and a refused batch changes nothing.
 */
function spliceModel(text: string, splices: readonly TextSplice[]): { text: string } | { error: string } {
  let s = text
  for (const [pos, del, ins] of splices) {
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(del) || pos < 0 || del < 0 || pos + del > s.length) return { error: 'TEXT_RANGE' }
    if (splitsPair(s, pos) || splitsPair(s, pos + del)) return { error: 'TEXT_RANGE' }
    if (!wellFormed(ins)) return { error: 'INVALID_TEXT' }
    s = s.slice(0, pos) + ins + s.slice(pos + del)
  }
  return { text: s }
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

const sv = (doc: Y.Doc): Uint8Array => Y.encodeStateVector(doc)

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

describe('replaceRecord and patchRecord', () => {
  it('match a plain-object model, report exactly the changed fields, and replicate', () => {
    let unchanged = 0
    let changed = 0
    fc.assert(
      fc.property(fc.array(recordOpArb, { minLength: 1, maxLength: 12 }), (ops) => {
        const doc = createEntityDoc(undefined, 1)
        const replica = createEntityDoc(undefined, 2)
        const model = new Map<string, JsonValue>()
        for (const op of ops) {
          const expectedFields = applyRecordModel(model, op)
          const before = sv(doc)
          const edit = applyRecordOp(doc, op)
          expect(edit.fields).toEqual(expectedFields)
          expect(edit.texts).toEqual([])
          expect(canonRecord(doc)).toBe(canonModel(model))
          expect(Object.keys(readRecord(doc)).sort()).toEqual([...model.keys()].sort())
          if (expectedFields.length === 0) {
            unchanged++
            expect(edit.update).toBeNull()
            expect(sv(doc)).toEqual(before)
          } else {
            changed++
            expect(edit.update).toBeInstanceOf(Uint8Array)
            applyEntityUpdate(replica, edit.update as Uint8Array)
          }
          expect(canonRecord(replica)).toBe(canonModel(model))
        }
        expect(hasPendingUpdates(replica)).toBe(false)
      }),
      { seed: SEED, numRuns: 300 },
    )
    expect(unchanged).toBeGreaterThan(50)
    expect(changed).toBeGreaterThan(50)
  })

  it('replace with the current record, or a patch of current values, is a no-op', () => {
    fc.assert(
      fc.property(replaceArb, fc.integer(), (record, seed) => {
        const doc = createEntityDoc(undefined, 1)
        replaceRecord(doc, record)
        const before = sv(doc)
        // Same content, fresh objects in a different key order.
        const again = Object.fromEntries(shuffle(Object.entries(JSON.parse(JSON.stringify(record)) as JsonRecord), prng(seed)))
        expect(replaceRecord(doc, again)).toEqual({ update: null, fields: [], texts: [] })
        // (A null in a patch removes the field, so only the non-null values are re-patched.)
        const nonNull = Object.fromEntries(Object.entries(again).filter(([, v]) => v !== null))
        expect(patchRecord(doc, nonNull)).toEqual({ update: null, fields: [], texts: [] })
        const absent = Object.fromEntries(['zz-absent', 'other'].filter((k) => !Object.hasOwn(record, k)).map((k) => [k, null]))
        expect(patchRecord(doc, absent)).toEqual({ update: null, fields: [], texts: [] })
        expect(sv(doc)).toEqual(before)
      }),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('refuses records that would not survive replication, with INVALID_RECORD, changing nothing', () => {
    const poison = fc.constantFrom<[string, () => JsonRecord]>(
      ['top-level __proto__', () => JSON.parse('{"__proto__": 1}') as JsonRecord],
      ['nested __proto__', () => JSON.parse('{"a": {"b": [{"__proto__": {"x": 1}}]}}') as JsonRecord],
      ['lone surrogate key', () => ({ 'k\ud800': 1 })],
      ['lone surrogate nested key', () => ({ a: { '\udc00': 1 } })],
      ['lone surrogate value', () => ({ a: 'v\udfff' })],
      ['lone surrogate in array', () => ({ a: [1, ['\ud83d']] })],
      ['field name too long', () => ({ ['x'.repeat(MAX_FIELD_NAME_BYTES + 1)]: 1 })],
      ['field name too long in UTF-8', () => ({ ['\u20ac'.repeat(Math.floor(MAX_FIELD_NAME_BYTES / 3) + 1)]: 1 })],
    )
    fc.assert(
      fc.property(replaceArb, poison, fc.boolean(), (base, [, make], usePatch) => {
        const doc = createEntityDoc(undefined, 1)
        replaceRecord(doc, base)
        const before = sv(doc)
        const record = canonRecord(doc)
        const bad = { ...base }
        for (const [k, v] of Object.entries(make())) Object.defineProperty(bad, k, { value: v, enumerable: true, writable: true, configurable: true })
        const err = thrownBy(() => (usePatch ? patchRecord(doc, bad) : replaceRecord(doc, bad)))
        expect(err).toBeInstanceOf(ValidationError)
        expect((err as ValidationError).code).toBe('INVALID_RECORD')
        expect(sv(doc)).toEqual(before)
        expect(canonRecord(doc)).toBe(record)
      }),
      { seed: SEED, numRuns: 200 },
    )
    // The limit itself is accepted.
    const doc = createEntityDoc()
    expect(patchRecord(doc, { ['x'.repeat(MAX_FIELD_NAME_BYTES)]: 1 }).fields).toHaveLength(1)
  })
})

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

describe('spliceText', () => {
  it('matches a JS string model; a refused batch throws and changes nothing', () => {
    const outcomes = { ok: 0, TEXT_RANGE: 0, INVALID_TEXT: 0 }
    fc.assert(
      fc.property(
        fc.array(fc.record({ name: fc.constantFrom('t', 'notes'), specs: fc.array(spliceSpecArb, { maxLength: 4 }) }), { minLength: 1, maxLength: 10 }),
        (batches) => {
          const doc = createEntityDoc(undefined, 1)
          const replica = createEntityDoc(undefined, 2)
          const model = new Map<string, string>()
          for (const { name, specs } of batches) {
            const text = model.get(name) ?? ''
            const splices = materialize(text, specs, false)
            const expected = spliceModel(text, splices)
            const before = sv(doc)
            if ('error' in expected) {
              const err = thrownBy(() => spliceText(doc, name, splices))
              expect(err).toBeInstanceOf(ValidationError)
              expect((err as ValidationError).code).toBe(expected.error)
              outcomes[expected.error as 'TEXT_RANGE' | 'INVALID_TEXT']++
              expect(sv(doc)).toEqual(before)
            } else {
              outcomes.ok++
              const edit = spliceText(doc, name, splices)
              model.set(name, expected.text)
              if (edit.update !== null) {
                expect(edit.texts).toEqual([name])
                applyEntityUpdate(replica, edit.update)
              }
              if (splices.every(([, del, ins]) => del === 0 && ins === '')) expect(edit.update).toBeNull()
              if (expected.text !== text) expect(edit.update).not.toBeNull()
              expect(edit.fields).toEqual([])
            }
            for (const [n, t] of model) {
              expect(readText(doc, n)).toBe(t)
              expect(readText(replica, n)).toBe(t)
            }
          }
        },
      ),
      { seed: SEED, numRuns: 300 },
    )
    expect(outcomes.ok).toBeGreaterThan(500)
    expect(outcomes.TEXT_RANGE).toBeGreaterThan(50)
    expect(outcomes.INVALID_TEXT).toBeGreaterThan(5)
  })

  it("reads back the document's string after any mix of local splices, remote updates, embeds and formatting (the cached string)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            { weight: 4, arbitrary: fc.record({ kind: fc.constant('splice' as const), specs: fc.array(okSpliceArb, { minLength: 1, maxLength: 3 }) }) },
            { weight: 2, arbitrary: fc.record({ kind: fc.constant('remote' as const), specs: fc.array(okSpliceArb, { minLength: 1, maxLength: 3 }) }) },
            { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('embed' as const, 'format' as const, 'read' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
          ),
          { minLength: 1, maxLength: 25 },
        ),
        (steps) => {
          const doc = createEntityDoc(undefined, 1)
          const peer = createEntityDoc(undefined, 2)
          for (const step of steps) {
            const text = doc.getText('t').toString()
            if (step.kind === 'splice' || step.kind === 'remote') {
              const target = step.kind === 'splice' ? doc : peer
              const splices = materialize(target.getText('t').toString(), step.specs, false)
              let edit: EntityEdit | undefined
              try {
                edit = spliceText(target, 't', splices)
              } catch (error) {
                if (!(error instanceof ValidationError)) throw error // a split surrogate pair: refused
              }
              if (edit?.update) applyEntityUpdate(step.kind === 'splice' ? peer : doc, edit.update)
            } else if (step.kind === 'embed') {
              const update = (() => {
                let captured: Uint8Array | undefined
                peer.once('update', (u: Uint8Array) => (captured = u))
                peer.getText('t').insertEmbed(Math.floor(step.at * peer.getText('t').length), { image: 'x' })
                return captured as Uint8Array
              })()
              applyEntityUpdate(doc, update)
            } else if (step.kind === 'format' && text.length > 0) {
              doc.getText('t').format(Math.floor(step.at * (doc.getText('t').length - 1)), 1, { bold: true })
            }
            expect(readText(doc, 't')).toBe(doc.getText('t').toString())
            expect(readText(peer, 't')).toBe(peer.getText('t').toString())
          }
        },
      ),
      { seed: SEED, numRuns: 300 },
    )
  })

  it('refuses a position inside a surrogate pair instead of mangling the character', () => {
    const doc = createEntityDoc(undefined, 1)
    spliceText(doc, 't', [[0, 0, 'a😀b']])
    for (const splice of [[2, 0, 'x'], [2, 1, ''], [1, 1, ''], [0, 2, '']] as TextSplice[]) {
      const err = thrownBy(() => spliceText(doc, 't', [splice]))
      expect((err as ValidationError).code).toBe('TEXT_RANGE')
    }
    expect(readText(doc, 't')).toBe('a😀b')
    spliceText(doc, 't', [[1, 2, '🙂']])
    expect(readText(doc, 't')).toBe('a🙂b')
  })

  it('reading a text that does not exist creates no root: only written texts are named', () => {
    const doc = createEntityDoc(undefined, 1)
    spliceText(doc, 'body', [[0, 0, 'x']])
    expect(readText(doc, 'never')).toBe('')
    expect(textNames(doc)).toEqual(['body'])
    spliceText(doc, 'abstract', [[0, 0, 'y']])
    expect(textNames(doc)).toEqual(['abstract', 'body'])
  })

  it('rejects bad text names', () => {
    const doc = createEntityDoc()
    for (const name of ['data', 'Bad', '', 'a/b']) {
      expect((thrownBy(() => spliceText(doc, name, [[0, 0, 'x']])) as ValidationError).code).toBe('INVALID_TEXT_NAME')
    }
  })
})

// ---------------------------------------------------------------------------------------------
// Convergence
// ---------------------------------------------------------------------------------------------

type PeerOp =
  | { kind: 'record'; doc: number; op: RecordOp }
  | { kind: 'splice'; doc: number; name: string; specs: SpliceSpec[] }
  | { kind: 'clear'; doc: number }
  | { kind: 'deliver'; to: number; picks: number[] }

const peerOpArb = (peers: number): fc.Arbitrary<PeerOp> => {
  const doc = fc.integer({ min: 0, max: peers - 1 })
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('record' as const), doc, op: recordOpArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('record' as const), doc, op: rawRecordOpArb }) },
    {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant('splice' as const), doc, name: fc.constantFrom('t', 'u'), specs: fc.array(okSpliceArb, { minLength: 1, maxLength: 3 }) }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('splice' as const), doc, name: fc.constantFrom('t', 'u'), specs: fc.array(rawInsertSpliceArb, { minLength: 1, maxLength: 2 }) }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const), doc }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('deliver' as const), to: doc, picks: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }) }) },
  )
}

describe('convergence', () => {
  it('peers making concurrent edits and exchanging updates in any order (with duplicates) converge', () => {
    const scenarioArb = fc.integer({ min: 2, max: 3 }).chain((peers) =>
      fc.record({
        clientIDs: fc.uniqueArray(fc.integer({ min: 1, max: 2 ** 31 }), { minLength: peers, maxLength: peers }),
        ops: fc.array(peerOpArb(peers), { minLength: 1, maxLength: 30 }),
        seed: fc.integer(),
      }),
    )
    let concurrentEdits = 0
    let refused = 0
    fc.assert(
      fc.property(scenarioArb, ({ clientIDs, ops, seed }) => {
        const rand = prng(seed)
        const docs = clientIDs.map((id) => createEntityDoc(undefined, id))
        const log: Uint8Array[] = []
        const seenCount = docs.map(() => 0) // how many log entries each doc has had delivered
        for (const op of ops) {
          if (op.kind === 'deliver') {
            for (const p of op.picks) {
              if (log.length === 0) break
              applyEntityUpdate(docs[op.to] as Y.Doc, log[p % log.length] as Uint8Array)
            }
            seenCount[op.to] = Math.max(seenCount[op.to] as number, log.length)
            continue
          }
          const doc = docs[op.doc] as Y.Doc
          if ((seenCount[op.doc] as number) < log.length) concurrentEdits++
          const before = sv(doc)
          let edit: EntityEdit
          try {
            if (op.kind === 'record') edit = applyRecordOp(doc, op.op)
            else if (op.kind === 'splice') edit = spliceText(doc, op.name, materialize(readText(doc, op.name), op.specs, true))
            else edit = clearEntity(doc)
          } catch (err) {
            // Only input that could not replicate faithfully may be refused, and it leaves no trace.
            expect(err).toBeInstanceOf(ValidationError)
            expect(['INVALID_RECORD', 'INVALID_TEXT']).toContain((err as ValidationError).code)
            expect(sv(doc)).toEqual(before)
            refused++
            continue
          }
          if (edit.update !== null) log.push(edit.update)
        }
        // Final anti-entropy: every doc gets every update, shuffled, some twice.
        for (const doc of docs) {
          const delivery = shuffle(log, rand)
          for (let i = 0; i < 3 && log.length > 0; i++) delivery.push(log[Math.floor(rand() * log.length)] as Uint8Array)
          for (const u of shuffle(delivery, rand)) applyEntityUpdate(doc, u)
        }
        const [first, ...rest] = docs as [Y.Doc, ...Y.Doc[]]
        expect(hasPendingUpdates(first)).toBe(false)
        for (const other of rest) {
          expect(hasPendingUpdates(other)).toBe(false)
          expect(readRecord(other)).toEqual(readRecord(first))
          for (const name of ['t', 'u']) expect(readText(other, name)).toBe(readText(first, name))
          expect(Y.encodeStateVector(other)).toEqual(Y.encodeStateVector(first))
        }
      }),
      { seed: SEED, numRuns: 250 },
    )
    expect(concurrentEdits).toBeGreaterThan(500)
    expect(refused).toBeGreaterThan(20)
  })

  it('an update whose dependencies are missing stays pending until they arrive', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 2, maxLength: 6 }), fc.integer(), (inserts, seed) => {
        const rand = prng(seed)
        const a = createEntityDoc(undefined, 1)
        const updates = inserts.map((ins) => spliceText(a, 't', [[Math.floor(rand() * (readText(a, 't').length + 1)), 0, ins]]).update as Uint8Array)
        const b = createEntityDoc(undefined, 2)
        // Everything but the first update, in any order: each one depends on the first.
        for (const u of shuffle(updates.slice(1), rand)) applyEntityUpdate(b, u)
        expect(hasPendingUpdates(b)).toBe(true)
        expect(readText(b, 't')).toBe('')
        applyEntityUpdate(b, updates[0] as Uint8Array)
        expect(hasPendingUpdates(b)).toBe(false)
        expect(readText(b, 't')).toBe(readText(a, 't'))
        expect(Y.encodeStateVector(b)).toEqual(Y.encodeStateVector(a))
      }),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('a doc reloaded from its encoded state keeps its clientID, and its later edits replicate', () => {
    fc.assert(
      fc.property(fc.array(recordOpArb, { minLength: 1, maxLength: 5 }), fc.array(recordOpArb, { minLength: 1, maxLength: 5 }), (before, after) => {
        const original = createEntityDoc(undefined, 7)
        const peer = createEntityDoc(undefined, 8)
        for (const op of before) {
          const u = applyRecordOp(original, op).update
          if (u) applyEntityUpdate(peer, u)
        }
        const reloaded = createEntityDoc(Y.encodeStateAsUpdate(original), 7)
        expect(reloaded.clientID).toBe(7)
        expect(Y.encodeStateVector(reloaded)).toEqual(Y.encodeStateVector(original))
        for (const op of after) {
          const u = applyRecordOp(reloaded, op).update
          if (u) applyEntityUpdate(peer, u)
        }
        expect(hasPendingUpdates(peer)).toBe(false)
        expect(readRecord(peer)).toEqual(readRecord(reloaded))
        expect(Y.encodeStateVector(peer)).toEqual(Y.encodeStateVector(reloaded))
      }),
      { seed: SEED, numRuns: 100 },
    )
  })

  it('a delete of content not yet received is pending, then applied', () => {
    const a = createEntityDoc(undefined, 1)
    const insert = spliceText(a, 't', [[0, 0, 'hello']]).update as Uint8Array
    const del = spliceText(a, 't', [[1, 3, '']]).update as Uint8Array
    const b = createEntityDoc(undefined, 2)
    expect(hasPendingUpdates(b)).toBe(false)
    applyEntityUpdate(b, del)
    expect(hasPendingUpdates(b)).toBe(true)
    applyEntityUpdate(b, insert)
    expect(hasPendingUpdates(b)).toBe(false)
    expect(readText(b, 't')).toBe('ho')
  })

  it('a record edit whose predecessor is missing is pending', () => {
    const a = createEntityDoc(undefined, 1)
    const first = patchRecord(a, { x: 1 }).update as Uint8Array
    const second = patchRecord(a, { x: 2 }).update as Uint8Array
    const b = createEntityDoc(undefined, 2)
    applyEntityUpdate(b, second)
    expect(hasPendingUpdates(b)).toBe(true)
    expect(readRecord(b)).toEqual({})
    applyEntityUpdate(b, first)
    expect(hasPendingUpdates(b)).toBe(false)
    expect(readRecord(b)).toEqual({ x: 2 })
  })
})
