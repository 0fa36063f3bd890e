/**
 * Shared fast-check arbitraries and a small causal-history simulator for the crdt property tests.
 * Everything here is independent of the code under test except for the types and the vector
 * helpers the simulator needs to build contexts.
 */
import fc from 'fast-check'
import { MAX_FIELD_NAME_BYTES, canonical, merge, withCounter, type ChangeOp, type ChangeRecord, type Head, type JsonRecord, type JsonValue, type VersionVector } from '../../../crdt/index.ts'

/**
 * Node ids that collide often, including names of Object.prototype members and integer-like
 * ids (which JS objects enumerate first, in numeric rather than lexical order).
 */
export const NODE_POOL = ['a', 'b', 'c', '0', '1', '9', '10', '0a', 'z9', 'constructor', 'hasownproperty', 'n1']

/** Valid node ids: /^[0-9a-z]{1,64}$/, biased towards a small pool so vectors share keys. */
export const nodeIdArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NODE_POOL) },
  { weight: 1, arbitrary: fc.stringMatching(/^[0-9a-z]{1,64}$/) },
)

/** Counters: mostly small (so vectors compare in every way), sometimes huge; 0 means absent. */
export const counterArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 4 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) },
)

/** A raw (possibly non-canonical: zeros, any key order) vector. */
export const rawVectorArb: fc.Arbitrary<Record<string, number>> = fc.dictionary(nodeIdArb, counterArb, { maxKeys: 6 })

/** A canonical vector. */
export const vectorArb: fc.Arbitrary<VersionVector> = rawVectorArb.map((raw) => canonical(raw))

/** Valid namespaces (and text names): /^[a-z0-9][a-z0-9._-]{0,63}$/. */
export const namespaceArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('notes', 'a', 'x.y-z_1', 'data0'),
  fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/),
)

const isSurrogate = (cp: number): boolean => cp >= 0xd800 && cp <= 0xdfff

/** One printable character (any plane, never a control character, never `/`). */
export const printableCharArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).filter((cp) => cp !== 0x2f) },
  { weight: 1, arbitrary: fc.integer({ min: 0xa0, max: 0x10ffff }).filter((cp) => !isSurrogate(cp)) },
).map((cp) => String.fromCodePoint(cp))

/** Valid entity ids: 1..256 UTF-16 code units of printable characters without `/`. */
export const entityIdArb: fc.Arbitrary<string> = fc
  .oneof(
    fc.string({ unit: printableCharArb, minLength: 1, maxLength: 64 }),
    fc.string({ unit: printableCharArb, minLength: 1, maxLength: 256 }),
  )
  .filter((s) => s.length <= 256)

/** Any well-formed Unicode string (full planes, controls included, no lone surrogates). */
export const unicodeStringArb = (maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: 'binary', maxLength })

/** Strings made of arbitrary UTF-16 code units, lone surrogates included. */
export const codeUnitStringArb = (maxLength: number): fc.Arbitrary<string> =>
  fc.string({
    unit: fc.oneof(
      fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)),
      fc.constantFrom('\ud800', '\udfff', '\ud83d\ude00', 'a'),
    ),
    maxLength,
  })

/** Field names: well-formed strings, including the empty string and prototype names. */
export const fieldNameArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', 'a', 'b', 'title', 'constructor', 'toString', '$deleted'),
  unicodeStringArb(12),
)

const sortedUnique = (xs: readonly string[]): string[] => [...new Set(xs)].sort()

/** Valid change records (what decodeChange must accept and encodeChange must reproduce). */
export const changeArb: fc.Arbitrary<ChangeRecord> = fc
  .record({
    origin: nodeIdArb,
    seq: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    ns: namespaceArb,
    id: entityIdArb,
    op: fc.constantFrom<ChangeOp>('upsert', 'delete'),
    context: vectorArb,
    fields: fc.array(fieldNameArb, { maxLength: 6 }),
    texts: fc.array(namespaceArb, { maxLength: 4 }),
    update: fc.uint8Array({ maxLength: 48 }),
    time: fc.oneof(fc.integer({ min: 0, max: 2_000_000_000_000 }), fc.maxSafeNat()),
    fresh: fc.boolean(),
  })
  .map(({ fresh, ...r }) => ({
    ...r,
    // Only an upsert may start a new incarnation.
    ...(fresh && r.op === 'upsert' && { fresh: true as const }),
    fields: r.op === 'delete' ? [] : sortedUnique(r.fields),
    texts: r.op === 'delete' ? [] : sortedUnique(r.texts),
    update: r.op === 'delete' ? new Uint8Array(0) : r.update,
  }))

/** Deterministic PRNG (mulberry32) for permutations inside a property, seeded by fast-check. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Fisher-Yates shuffle of a copy. */
export function shuffle<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Causal history simulator: several nodes edit one entity and sync with each other at random.
// ---------------------------------------------------------------------------------------------

/** One simulated change, with the ground truth of what its author had seen. */
export interface SimChange extends Head {
  /** Dot keys of every change the author knew when making this one. */
  readonly seen: ReadonlySet<string>
}

export type SimAction =
  | { kind: 'write'; node: number; op: ChangeOp; fields: string[]; gap: number }
  | { kind: 'sync'; from: number; to: number }

export const SIM_FIELDS = ['a', 'b', 'c', 'd']

export const dotKey = (d: { readonly origin: string; readonly seq: number }): string => `${d.origin}:${d.seq}`

const simActionArb = (nodes: number): fc.Arbitrary<SimAction> =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('write' as const),
        node: fc.integer({ min: 0, max: nodes - 1 }),
        op: fc.oneof({ weight: 4, arbitrary: fc.constant<ChangeOp>('upsert') }, { weight: 1, arbitrary: fc.constant<ChangeOp>('delete') }),
        fields: fc.subarray(SIM_FIELDS, { minLength: 1 }),
        gap: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('sync' as const),
        from: fc.integer({ min: 0, max: nodes - 1 }),
        to: fc.integer({ min: 0, max: nodes - 1 }),
      }),
    },
  )

/** A random history: 1..4 nodes (ids drawn from a pool), up to `maxActions` writes and syncs. */
export const historyArb = (maxActions = 24): fc.Arbitrary<{ names: string[]; actions: SimAction[] }> =>
  fc.integer({ min: 1, max: 4 }).chain((n) =>
    fc.record({
      names: fc.uniqueArray(fc.constantFrom(...NODE_POOL), { minLength: n, maxLength: n }),
      actions: fc.array(simActionArb(n), { maxLength: maxActions }),
    }),
  )

/**
 * Runs a history. Each node keeps the changes it knows and the entity's version vector; a write
 * takes the node's vector as its context (its per-origin seq may skip numbers, as if the node
 * wrote other entities in between); a sync hands everything the sender knows to the receiver.
 */
export function simulate(h: { names: string[]; actions: SimAction[] }): SimChange[] {
  const state = h.names.map(() => ({ known: new Map<string, SimChange>(), vv: {} as VersionVector, seq: 0 }))
  const all: SimChange[] = []
  for (const action of h.actions) {
    if (action.kind === 'write') {
      const node = state[action.node]!
      const origin = h.names[action.node]!
      node.seq += 1 + action.gap
      const change: SimChange = {
        origin,
        seq: node.seq,
        op: action.op,
        context: node.vv,
        fields: action.op === 'delete' ? [] : [...action.fields].sort(),
        seen: new Set(node.known.keys()),
      }
      node.known.set(dotKey(change), change)
      node.vv = withCounter(node.vv, origin, node.seq)
      all.push(change)
    } else {
      const from = state[action.from]!
      const to = state[action.to]!
      for (const [k, c] of from.known) to.known.set(k, c)
      to.vv = merge(to.vv, from.vv)
    }
  }
  return all
}

// ---------------------------------------------------------------------------------------------
// Byte mutations for codec fuzzing.
// ---------------------------------------------------------------------------------------------

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'overwrite'; at: number; byte: number }

/** Bit flips, truncation, insertion of 1..4 bytes, byte overwrite; positions taken modulo the length. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
)

/** Applies one mutation (returns a new array). */
export function mutate(bytes: Uint8Array, m: Mutation): Uint8Array {
  const at = bytes.length === 0 ? 0 : m.at % bytes.length
  switch (m.kind) {
    case 'flip': {
      if (bytes.length === 0) return bytes
      const out = Uint8Array.from(bytes)
      out[at] = (out[at] as number) ^ (1 << m.bit)
      return out
    }
    case 'truncate':
      return bytes.slice(0, at)
    case 'insert':
      return Uint8Array.from([...bytes.slice(0, at), ...m.bytes, ...bytes.slice(at)])
    case 'overwrite': {
      if (bytes.length === 0) return bytes
      const out = Uint8Array.from(bytes)
      out[at] = m.byte
      return out
    }
  }
}

// ---- records (entity-doc, fresh-record) ----

const wellFormedText = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s

/** A record (or value) the data model accepts: well-formed strings, no `__proto__` keys. */
export function isValidValue(v: JsonValue): boolean {
  if (typeof v === 'string') return wellFormedText(v)
  if (Array.isArray(v)) return v.every(isValidValue)
  if (v !== null && typeof v === 'object') {
    return Object.entries(v).every(([k, x]) => k !== '__proto__' && wellFormedText(k) && isValidValue(x))
  }
  return true
}
export const isValidRecord = (r: JsonRecord): boolean =>
  isValidValue(r) && Object.keys(r).every((k) => Buffer.byteLength(k, 'utf8') <= MAX_FIELD_NAME_BYTES)

/** Field names that share the pool (so edits collide) plus prototype names and odd ones. */
export const recordFieldArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('a', 'b', 'c', 'title') },
  { weight: 1, arbitrary: fc.constantFrom('', 'constructor', 'toString', 'hasOwnProperty', '$deleted', 'data') },
  { weight: 1, arbitrary: unicodeStringArb(6) },
)
export const valueArb: fc.Arbitrary<JsonValue> = fc
  .oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.jsonValue({ maxDepth: 2, stringUnit: 'binary' }),
    fc.constantFrom<JsonValue>(0, 1, 'x', true, [], {}, { k: [1, 'y'] }),
  )
  .map((v) => v as JsonValue)
  .filter(isValidValue)
export const recordArb = (value: fc.Arbitrary<JsonValue>): fc.Arbitrary<JsonRecord> =>
  fc.dictionary(recordFieldArb, value, { maxKeys: 4, noNullPrototype: true }).filter(isValidRecord)
export const replaceArb = recordArb(valueArb)
export const patchArb = recordArb(fc.oneof(valueArb, fc.constant(null)))
