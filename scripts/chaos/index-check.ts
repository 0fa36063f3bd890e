import { setTimeout as sleep } from 'node:timers/promises'
import type { SocketApi } from './api.ts'
import { NS } from './workload.ts'

/**
 * The secondary indexes every daemon of a chaos run declares (`namespaces.X.indexes` in its
 * config.json, docs/queries.md), on namespaces the workload writes: one over the inserted
 * entities, one over the shared entities every node patches, puts and deletes.
 */
export const CHAOS_INDEXES: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>> = {
  [NS.insert]: { byNode: ['by', 'v:desc'] },
  [NS.shared]: { byFields: ['f0', 'f1:desc'] },
}

/** The config that declares {@link CHAOS_INDEXES}: secondary indexes on the namespaces the workload writes. */
export function indexConfig(): object {
  return { namespaces: Object.fromEntries(Object.entries(CHAOS_INDEXES).map(([ns, indexes]) => [ns, { indexes }])) }
}

/** What the index check found: indexes verified, and those that disagree with a full scan. */
export interface IndexCheck {
  readonly checked: number
  readonly mismatches: string[]
}

interface VerifyAnswer {
  readonly ok: boolean
  readonly state: string
  readonly entries: number
  readonly expected: number
  readonly missing: readonly string[]
  readonly extra: readonly string[]
}

/**
 * On every node, every declared index must be complete (`ready`, waited for up to `readyTimeoutMs`)
 * and agree with a full scan of its namespace (`POST /v1/ns/:ns/indexes/:name/verify`): an entry
 * for every live entity with its current values, none for anything else.
 */
export async function checkIndexes(nodes: readonly { readonly index: number; readonly api: SocketApi }[], readyTimeoutMs = 30_000): Promise<IndexCheck> {
  const mismatches: string[] = []
  let checked = 0
  for (const { index, api } of nodes) {
    for (const [ns, declared] of Object.entries(CHAOS_INDEXES)) {
      for (const name of Object.keys(declared)) {
        const path = `/v1/ns/${ns}/indexes/${name}`
        const deadline = Date.now() + readyTimeoutMs
        let state = await api.get<{ state: string }>(path).then((i) => i.state)
        while (state !== 'ready' && Date.now() < deadline) {
          await sleep(200)
          state = await api.get<{ state: string }>(path).then((i) => i.state)
        }
        const out = await api.call('POST', `${path}/verify`, undefined, 60_000)
        if (out.kind !== 'answer' || out.status !== 200) throw new Error(`verify ${ns}/${name} on node ${index}: ${out.kind === 'answer' ? `${out.status} ${out.text.slice(0, 200)}` : out.error}`)
        const r = out.json as VerifyAnswer
        checked++
        if (!r.ok || r.state !== 'ready') {
          mismatches.push(`node ${index}: index ${ns}/${name} (${r.state}) disagrees with a full scan: ${r.entries} entries, ${r.expected} expected; missing or wrong [${r.missing.join(' ')}], extra [${r.extra.join(' ')}]`)
        }
      }
    }
  }
  return { checked, mismatches }
}
