import { createHash } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import type { SocketApi } from './api.ts'
import { NS, TEXT_IDS, TEXT_NAME, type OpRecord, type VersionVector } from './workload.ts'

/** An entity as the API lists it. */
export interface EntityState {
  readonly id: string
  readonly value: Record<string, unknown>
  readonly version: VersionVector
  readonly conflicts?: readonly { field: string; values: readonly { value: unknown; origin: string; deleted?: boolean }[] }[]
}

export interface ConflictRow {
  readonly ns: string
  readonly id: string
  readonly field: string
  readonly winner: unknown
  readonly values: readonly { value: unknown; origin: string; version: VersionVector; deleted?: boolean }[]
}

/** What one node holds once the cluster has settled. */
export interface NodeState {
  readonly node: number
  readonly versionVector: VersionVector
  readonly counts: Record<string, number>
  /** ns -> id -> entity (live entities only). */
  readonly entities: Record<string, Record<string, EntityState>>
  readonly conflicts: ConflictRow[]
  /** text entity id -> text (absent when the entity does not exist). */
  readonly texts: Record<string, string>
}

/** Reads a node's whole state over its API. */
export async function collectState(node: number, api: SocketApi): Promise<NodeState> {
  const status = await api.get<{ versionVector: VersionVector; namespaces: Record<string, number> }>('/v1/status')
  const entities: Record<string, Record<string, EntityState>> = {}
  for (const ns of Object.values(NS)) {
    const out: Record<string, EntityState> = {}
    let after: string | undefined
    for (;;) {
      const page = await api.get<{ items: EntityState[]; next?: string }>(`/v1/ns/${ns}/entities?limit=1000${after !== undefined ? `&after=${encodeURIComponent(after)}` : ''}`)
      for (const e of page.items) out[e.id] = { id: e.id, value: e.value, version: e.version, ...(e.conflicts && { conflicts: e.conflicts }) }
      if (page.next === undefined) break
      after = page.next
    }
    entities[ns] = out
  }
  const conflicts = (await api.get<ConflictRow[]>('/v1/conflicts')).sort((a, b) => `${a.ns}/${a.id}/${a.field}`.localeCompare(`${b.ns}/${b.id}/${b.field}`))
  const texts: Record<string, string> = {}
  for (const id of TEXT_IDS) {
    if (!entities[NS.text]?.[id]) continue
    texts[id] = (await api.get<{ text: string }>(`/v1/ns/${NS.text}/entities/${id}/text/${TEXT_NAME}`)).text
  }
  return { node, versionVector: status.versionVector, counts: status.namespaces, entities, conflicts, texts }
}

/** sha256 of a node's state in a canonical form (sorted keys). */
export function fingerprint(state: NodeState): string {
  const { versionVector, entities, conflicts, texts } = state
  return createHash('sha256').update(canonical({ versionVector, entities, conflicts, texts })).digest('hex').slice(0, 16)
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v) ?? 'undefined'
}

export interface CheckResult {
  readonly ok: boolean
  readonly acknowledged: number
  /** Acknowledged writes missing (or wrong) on some node, with the reason. */
  readonly lost: number
  readonly lostSamples: string[]
  /** Values present that no write (or only a refused one) could have produced. */
  readonly phantoms: number
  readonly phantomSamples: string[]
  /** Batches partly applied. */
  readonly partialBatches: number
  /** Nodes whose state differs from node 0's, with the differences. */
  readonly divergent: boolean
  readonly divergenceSamples: string[]
  readonly conflictsIdentical: boolean
  readonly conflicts: number
  readonly fingerprints: string[]
  /** Writes whose supersession had to rely on a write of unknown outcome. */
  readonly supersededByUnknown: number
}

const dotOf = (w: OpRecord, version: VersionVector | undefined): number => version?.[w.nodeId] ?? 0

/**
 * The checker. Per node, for every acknowledged write w (dot d = (w's node, its seq), read from
 * the version its answer carried):
 *
 * - insert / batch item (unique key, written once): present with exactly that value, and the
 *   entity version covers d. Nothing can supersede it.
 * - text splice (unique token at position 0, never removed): the token is in the text exactly
 *   once, and the entity version covers d.
 * - patch / put of field f = v on a shared entity E:
 *   - E live: its version covers d, and either f == v, or v is one of the concurrent values the
 *     node reports for (E, f) (a conflict), or one of the field's heads (the current value or
 *     its absence, or a reported concurrent value), or a delete of E, comes from a write w' that
 *     **could be causally after w**: w' acknowledged with a version V' such that
 *     V'[w.node] >= d.seq (w' was made on a state that included w), or w' of unknown outcome that
 *     was still unanswered after w was invoked. The absence of f needs a put without f or a
 *     delete that could be after w.
 *     Also excused: the current value's write is concurrent with w and a later write to E saw
 *     both (it cleared their conflict, keeping the winner).
 *   - E gone: a delete of E that could be causally after w (same rule).
 * - delete of E: E gone, or E live with its version covering d and some current field written by
 *   a write not causally before the delete (an update concurrent with a delete wins), or E live
 *   with no field at all and a put of {} not causally before the delete.
 *
 * A write can never be excused by one that is concurrent with it (unless the node still reports
 * both as a conflict) or older, so dropping a write cannot pass. Also: no value that only a
 * refused write (or no write) could have made; batches all-or-nothing; and every node's state
 * (node vector, every entity's value, version and conflicts, the conflict list, the texts)
 * identical.
 */
export function check(history: readonly OpRecord[], states: readonly NodeState[]): CheckResult {
  const lostSamples: string[] = []
  const phantomSamples: string[] = []
  const divergenceSamples: string[] = []
  let lost = 0
  let phantoms = 0
  let partialBatches = 0
  let supersededByUnknown = 0
  const lose = (msg: string): void => {
    lost++
    if (lostSamples.length < 30) lostSamples.push(msg)
  }
  const phantom = (msg: string): void => {
    phantoms++
    if (phantomSamples.length < 30) phantomSamples.push(msg)
  }

  // Who wrote which value (values are unique strings).
  const writerOf = new Map<string, OpRecord>()
  const byEntity = new Map<string, OpRecord[]>()
  const tokens = new Map<string, OpRecord>()
  const uniqueIds = new Map<string, { op: OpRecord; value: Record<string, string> }>()
  for (const op of history) {
    if (op.fields && op.ns === NS.shared) for (const v of Object.values(op.fields)) writerOf.set(v, op)
    if (op.ns === NS.shared) {
      const list = byEntity.get(op.id) ?? []
      list.push(op)
      byEntity.set(op.id, list)
    }
    if (op.token) tokens.set(op.token, op)
    if (op.kind === 'insert') uniqueIds.set(`${op.ns}/${op.id}`, { op, value: op.fields as Record<string, string> })
    if (op.kind === 'batch') for (const it of op.items ?? []) uniqueIds.set(`${op.ns}/${it.id}`, { op, value: it.value })
  }

  // Per shared entity, its deletes and its writes by origin, in history order (what the loops
  // below filter `byEntity` for, without scanning every write of the entity each time).
  const deletesOf = new Map<string, OpRecord[]>()
  const byOrigin = new Map<string, Map<string, OpRecord[]>>()
  for (const [id, ops] of byEntity) {
    deletesOf.set(id, ops.filter((o) => o.kind === 'delete'))
    const origins = new Map<string, OpRecord[]>()
    for (const o of ops) {
      const list = origins.get(o.nodeId) ?? []
      list.push(o)
      origins.set(o.nodeId, list)
    }
    byOrigin.set(id, origins)
  }

  /** Could w2 be causally after w (w2 made on a state that included w)? */
  const couldFollow = (w2: OpRecord, w: OpRecord): boolean => {
    if (w2 === w || w2.outcome === 'fail') return false
    if (w2.outcome === 'ok' && w2.version) return (w2.version[w.nodeId] ?? 0) >= dotOf(w, w.version)
    // Unknown outcome: it may have been applied at any moment until its request ended.
    const could = (w2.t1 ?? Infinity) > w.t0
    if (could) supersededByUnknown++
    return could
  }
  /** Could w2 be concurrent with, or after, delete d (not causally before it)? */
  const notBefore = (w2: OpRecord, d: OpRecord): boolean => {
    if (w2.outcome === 'fail') return false
    if (w2.outcome === 'ok' && w2.version) return (d.version?.[w2.nodeId] ?? 0) < dotOf(w2, w2.version)
    return (w2.t1 ?? Infinity) > d.t0
  }

  for (const state of states) {
    const where = `node ${state.node}`
    const shared = state.entities[NS.shared] ?? {}
    const tokenCounts = new Map<string, Map<string, number>>()
    const countOf = (id: string, token: string): number => {
      let counts = tokenCounts.get(id)
      if (!counts) {
        counts = bracketedCounts(state.texts[id] ?? '')
        tokenCounts.set(id, counts)
      }
      return counts.get(token) ?? 0
    }
    for (const w of history) {
      if (w.outcome !== 'ok') continue
      if (w.kind === 'insert' || w.kind === 'batch') {
        const items = w.kind === 'insert' ? [{ id: w.id, value: w.fields as Record<string, string> }] : (w.items ?? [])
        items.forEach((it, i) => {
          const e = state.entities[w.ns]?.[it.id]
          const version = w.kind === 'insert' ? w.version : w.versions?.[i]
          if (!e) lose(`${where}: acknowledged ${w.kind} ${w.ns}/${it.id} (by node ${w.node} at ${w.t1} ms) is missing`)
          else if (!isDeepStrictEqual(e.value, it.value)) lose(`${where}: ${w.ns}/${it.id} is ${JSON.stringify(e.value)}, acknowledged ${JSON.stringify(it.value)}`)
          else if ((e.version[w.nodeId] ?? 0) < dotOf(w, version)) lose(`${where}: ${w.ns}/${it.id} version ${JSON.stringify(e.version)} lacks the acknowledged change ${w.nodeId}:${dotOf(w, version)}`)
        })
      } else if (w.kind === 'text') {
        // Tokens are `[n<node>.<k>]`, with no bracket inside: counted in one pass over the text
        // (splitting the whole text once per token made the check quadratic in the text ops).
        const count = countOf(w.id, w.token as string)
        const e = state.entities[NS.text]?.[w.id]
        if (count !== 1) lose(`${where}: text ${w.id} holds acknowledged token ${w.token} ${count} times`)
        else if (e && (e.version[w.nodeId] ?? 0) < dotOf(w, w.version)) lose(`${where}: text ${w.id} version lacks ${w.nodeId}:${dotOf(w, w.version)}`)
      } else if (w.kind === 'patch' || w.kind === 'put') {
        const e = shared[w.id]
        const others = byEntity.get(w.id) ?? []
        const deletes = deletesOf.get(w.id) ?? []
        const origins = byOrigin.get(w.id)
        if (!e) {
          if (!deletes.some((d) => couldFollow(d, w))) lose(`${where}: ${w.kind} ${JSON.stringify(w.fields)} of ${w.id} (node ${w.node}, ${w.t1} ms) acknowledged, entity gone with no delete after it`)
          continue
        }
        if ((e.version[w.nodeId] ?? 0) < dotOf(w, w.version)) {
          lose(`${where}: ${w.id} version ${JSON.stringify(e.version)} lacks acknowledged ${w.kind} ${w.nodeId}:${dotOf(w, w.version)}`)
          continue
        }
        for (const [f, v] of Object.entries(w.fields ?? {})) {
          const cur = e.value[f]
          if (cur === v) continue
          const siblings = e.conflicts?.find((c) => c.field === f)?.values ?? []
          if (siblings.some((s) => s.value === v)) continue
          // The field's heads: the winner, or every concurrent value the node reports. w is
          // superseded when one of them could be causally after it.
          const removesF = (o: OpRecord): boolean => o.kind === 'delete' || (o.kind === 'put' && !(f in (o.fields ?? {})))
          const headWriters = (value: unknown, dot?: { origin: string; seq: number }): OpRecord[] => {
            if (typeof value === 'string') return writerOf.has(value) ? [writerOf.get(value) as OpRecord] : []
            // A head that removed the field, named by its dot: the acknowledged write with that
            // dot (a delete, a put without f, or the first write after a delete, which starts
            // from an empty record), or a write of unknown outcome from that node.
            if (dot) return (origins?.get(dot.origin) ?? []).filter((o) => (o.outcome === 'ok' ? dotOf(o, o.version) === dot.seq : o.outcome === 'unknown'))
            // No dot (a single head): a removal, or a write made after some delete.
            return others.filter((o) => removesF(o) || (!(f in (o.fields ?? {})) && deletes.some((d) => d.outcome !== 'fail' && (o.outcome !== 'ok' || d.outcome !== 'ok' || (o.version?.[d.nodeId] ?? 0) >= dotOf(d, d.version)))))
          }
          const heads =
            siblings.length > 0
              ? siblings.flatMap((s) => headWriters(s.value, { origin: s.origin, seq: (s as { version?: VersionVector }).version?.[s.origin] ?? 0 }))
              : headWriters(cur)
          // A delete that saw w supersedes it, even when updates concurrent with that delete
          // keep the entity alive (the delete resolved the field's siblings).
          // Or the current winner was concurrent with w (not before it) and a later write to E
          // saw both: that write cleared their conflict and kept the winner (docs/architecture.md, Data model).
          const winner = typeof cur === 'string' ? writerOf.get(cur) : undefined
          const resolved = winner !== undefined && winner !== w && notBefore(winner, w) && others.some((o) => o !== winner && couldFollow(o, w) && couldFollow(o, winner))
          const excused = resolved || heads.some((h) => couldFollow(h, w)) || deletes.some((o) => couldFollow(o, w))
          if (!excused) lose(`${where}: ${w.id}.${f} = ${JSON.stringify(cur)}; acknowledged ${w.kind} of ${JSON.stringify(v)} (node ${w.node}, ${w.t0}-${w.t1} ms, dot ${w.nodeId}:${dotOf(w, w.version)}) neither there nor superseded by a later write`)
        }
      } else if (w.kind === 'delete') {
        const e = shared[w.id]
        if (!e) continue
        if ((e.version[w.nodeId] ?? 0) < dotOf(w, w.version)) {
          lose(`${where}: ${w.id} version ${JSON.stringify(e.version)} lacks acknowledged delete ${w.nodeId}:${dotOf(w, w.version)}`)
          continue
        }
        const writers = Object.values(e.value).flatMap((v) => (typeof v === 'string' && writerOf.has(v) ? [writerOf.get(v) as OpRecord] : []))
        const deletedSibling = e.conflicts?.some((c) => c.field === '$deleted')
        // A live record with no field: a put of {} (the workload writes one now and then) not
        // causally before the delete kept the entity alive; its fields name no writer.
        const emptyPut = Object.keys(e.value).length === 0 && (byEntity.get(w.id) ?? []).some((o) => o.kind === 'put' && Object.keys(o.fields ?? {}).length === 0 && notBefore(o, w))
        if (!deletedSibling && !emptyPut && !writers.some((o) => notBefore(o, w))) lose(`${where}: ${w.id} is live (${JSON.stringify(e.value)}) though acknowledged delete (node ${w.node}, ${w.t1} ms) came after every write in it`)
      }
    }

    // Nothing that no write (or only a refused one) could have made.
    for (const [ns, ents] of Object.entries(state.entities)) {
      for (const e of Object.values(ents)) {
        if (ns === NS.shared) {
          for (const [f, v] of Object.entries(e.value)) {
            const w = typeof v === 'string' ? writerOf.get(v) : undefined
            if (!w || w.outcome === 'fail' || w.id !== e.id || !(f in (w.fields ?? {}))) phantom(`${where}: ${e.id}.${f} = ${JSON.stringify(v)} was never written there (${w?.outcome ?? 'no write'})`)
          }
        } else if (ns === NS.insert || ns === NS.batch) {
          const u = uniqueIds.get(`${ns}/${e.id}`)
          if (!u || u.op.outcome === 'fail') phantom(`${where}: ${ns}/${e.id} exists, but ${u ? 'its write was refused' : 'nobody wrote it'}`)
          else if (!isDeepStrictEqual(e.value, u.value)) phantom(`${where}: ${ns}/${e.id} = ${JSON.stringify(e.value)}, written ${JSON.stringify(u.value)}`)
        }
      }
    }
    for (const [id, text] of Object.entries(state.texts)) {
      for (const token of text.match(/\[n\d+\.\d+\]/g) ?? []) {
        const w = tokens.get(token)
        if (!w || w.outcome === 'fail' || w.id !== id) phantom(`${where}: text ${id} holds ${token}, ${w ? 'refused' : 'never written'}`)
      }
      if (text.replace(/\[n\d+\.\d+\]/g, '') !== '') phantom(`${where}: text ${id} holds something else than whole tokens: ${JSON.stringify(text.slice(0, 200))}`)
    }
    // Batches are atomic: all of a batch, or none of it.
    for (const w of history) {
      if (w.kind !== 'batch' || w.outcome === 'ok') continue
      const present = (w.items ?? []).filter((it) => state.entities[NS.batch]?.[it.id] !== undefined).length
      if (present !== 0 && present !== (w.items ?? []).length) {
        partialBatches++
        if (lostSamples.length < 30) lostSamples.push(`${where}: batch ${w.id} (${w.outcome}) is partly there: ${present}/${w.items?.length}`)
      }
    }
  }

  // Identical final state everywhere.
  const base = states[0]
  if (base) {
    for (const s of states.slice(1)) {
      const diff = (what: string): void => {
        if (divergenceSamples.length < 30) divergenceSamples.push(`node ${s.node} vs node ${base.node}: ${what}`)
      }
      if (!isDeepStrictEqual(s.versionVector, base.versionVector)) diff(`node vector ${JSON.stringify(s.versionVector)} vs ${JSON.stringify(base.versionVector)}`)
      for (const ns of Object.values(NS)) {
        const a = base.entities[ns] ?? {}
        const b = s.entities[ns] ?? {}
        for (const id of new Set([...Object.keys(a), ...Object.keys(b)])) {
          if (!isDeepStrictEqual(a[id], b[id])) diff(`${ns}/${id}: ${JSON.stringify(b[id])?.slice(0, 300)} vs ${JSON.stringify(a[id])?.slice(0, 300)}`)
        }
      }
      if (!isDeepStrictEqual(s.texts, base.texts)) diff('texts differ')
      if (!isDeepStrictEqual(s.conflicts, base.conflicts)) diff(`conflicts differ (${s.conflicts.length} vs ${base.conflicts.length})`)
    }
  }
  const fingerprints = states.map(fingerprint)
  const divergent = new Set(fingerprints).size > 1 || divergenceSamples.length > 0
  const conflictsIdentical = states.every((s) => isDeepStrictEqual(s.conflicts, base?.conflicts))
  const acknowledged = history.filter((w) => w.outcome === 'ok').length
  return {
    ok: lost === 0 && phantoms === 0 && partialBatches === 0 && !divergent,
    acknowledged,
    lost,
    lostSamples,
    phantoms,
    phantomSamples,
    partialBatches,
    divergent,
    divergenceSamples,
    conflictsIdentical,
    conflicts: base?.conflicts.length ?? 0,
    fingerprints,
    supersededByUnknown,
  }
}

/**
 * How often each `[...]` substring (a `[` up to the first `]` after it) occurs in `text`. For a
 * token that starts with `[`, ends with `]` and holds no other bracket, this is exactly how many
 * times it occurs, overlaps included.
 */
export function bracketedCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>()
  for (let at = text.indexOf('['); at !== -1; at = text.indexOf('[', at + 1)) {
    const end = text.indexOf(']', at + 1)
    if (end === -1) break
    const token = text.slice(at, end + 1)
    counts.set(token, (counts.get(token) ?? 0) + 1)
  }
  return counts
}
