import { isDeepStrictEqual } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { codeOf, joinArgs, ok, patch, put, statusOf, valueOf } from '../helpers/cluster.ts'
import { startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon-process.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { runCli as cli } from '../helpers/run-process.ts'

/** docs/history.md on real daemons: the same history, in the same order, on every node. */

interface Item {
  cursor: string
  origin: string
  seq: number
  op: string
  values: Record<string, unknown>
  texts: string[]
  concurrentCount?: number
  concurrentWith?: { origin: string; seq: number }[]
}
interface Page {
  items: Item[]
  next?: string
  truncated?: unknown
}

const historyPath = (ns: string, id: string, query = ''): string => `/v1/ns/${ns}/entities/${id}/history${query}`

async function historyOf(d: DaemonHandle, ns: string, id: string): Promise<Item[]> {
  const items: Item[] = []
  let after = ''
  for (;;) {
    const page = ok(await d.sock<Page>('GET', historyPath(ns, id, `?limit=2${after}`)), `history on ${d.info.nodeId}`)
    items.push(...page.items)
    if (page.next === undefined) return items
    after = `&after=${encodeURIComponent(page.next)}`
  }
}

describe('entity history across three nodes', () => {
  afterAll(stopAllDaemons)

  it('concurrent writes on three nodes: every node lists the same changes, in the same order, marked concurrent', { timeout: 120_000 }, async () => {
    const a = await startDaemon()
    // Same cluster, no bootstrap: b and c write without seeing anything of the others.
    const clusterKey = joinArgs(a).slice(0, 2)
    const [b, c] = await Promise.all([startDaemon({ args: clusterKey }), startDaemon({ args: clusterKey })])
    await put(a, 'notes', 'x', { title: 'from a' })
    await put(b, 'notes', 'x', { title: 'from b', n: 1 })
    await patch(b, 'notes', 'x', { n: 2 })
    await put(c, 'notes', 'x', { title: 'from c' })
    ok(await c.sock('POST', '/v1/ns/notes/entities/x/text/body', { ops: [[0, 0, 'hello']] }), 'text on c')
    for (const d of [b, c]) ok(await d.sock('POST', '/v1/peers', { multiaddr: a.info.listen[0] }), `dial from ${d.info.nodeId}`)
    const converged = async (): Promise<boolean> => {
      const statuses = await Promise.all([a, b, c].map((d) => statusOf(d)))
      const values = await Promise.all([a, b, c].map((d) => valueOf(d, 'notes', 'x')))
      return statuses.every((s) => isDeepStrictEqual(s.versionVector, statuses[0]?.versionVector)) && values.every((v) => isDeepStrictEqual(v, values[0])) && Object.keys(statuses[0]?.versionVector ?? {}).length === 3
    }
    await waitFor(converged, { timeout: 60_000, interval: 100, message: 'three nodes to converge' })
    // One write on top of everything, then everyone has it.
    await patch(a, 'notes', 'x', { title: 'settled' })
    await waitFor(async () => (await Promise.all([b, c].map((d) => valueOf(d, 'notes', 'x')))).every((v) => v?.title === 'settled') && converged(), {
      timeout: 60_000,
      interval: 100,
      message: 'the last write everywhere',
    })

    const [ha, hb, hc] = await Promise.all([a, b, c].map((d) => historyOf(d, 'notes', 'x')))
    expect(hb).toEqual(ha)
    expect(hc).toEqual(ha)
    const items = ha as Item[]
    const [na, nb] = [a.info.nodeId, b.info.nodeId]
    const dot = (i: { origin: string; seq: number }): string => `${i.origin === na ? 'a' : i.origin === nb ? 'b' : 'c'}${i.seq}`
    expect(items).toHaveLength(6)
    expect(dot(items[0] as Item)).toBe('a2')
    expect(items[0]).toMatchObject({ op: 'upsert', values: { title: 'settled' } })
    expect(items[0]?.concurrentCount).toBeUndefined()
    const byDot = new Map(items.map((i) => [dot(i), i]))
    const concurrentOf = (d: string): string[] => (byDot.get(d)?.concurrentWith ?? []).map(dot).sort()
    expect(concurrentOf('a1')).toEqual(['b1', 'b2', 'c1', 'c2'])
    expect(concurrentOf('b1')).toEqual(['a1', 'c1', 'c2'])
    expect(concurrentOf('c2')).toEqual(['a1', 'b1', 'b2'])
    expect(byDot.get('b2')?.values).toEqual({ n: 2 })
    expect(byDot.get('c2')?.texts).toEqual(['body'])
    // Each origin's own changes, newest first.
    expect(items.map(dot).indexOf('b2')).toBeLessThan(items.map(dot).indexOf('b1'))

    for (const d of [a, b, c]) expect(ok(await d.sock<{ ok: boolean }>('POST', '/v1/history/verify'), 'verify').ok).toBe(true)
    // Over TCP with the token, too; bad input answers with a code.
    expect((await a.tcp<Page>('GET', historyPath('notes', 'x', '?limit=1'))).json.items).toHaveLength(1)
    expect(codeOf(await a.sock('GET', historyPath('notes', 'x', '?after=bogus')))).toBe('INVALID_CURSOR')
    expect(codeOf(await a.sock('GET', historyPath('notes', 'x', '?limit=0')))).toBe('INVALID_QUERY')
    expect(codeOf(await a.sock('GET', historyPath('notes', 'nothing-here')))).toBe('ENTITY_NOT_FOUND')

    // The CLI prints one line per change, newest first, and pages with --all.
    const out = await cli(['history', 'notes', 'x', '--data-dir', a.dataDir, '--limit', '4', '--all'])
    expect(out.stderr).toBe('')
    expect(out.code).toBe(0)
    const lines = out.stdout.split('\n').filter((l) => l !== '')
    expect(lines).toHaveLength(6)
    expect(lines[0]).toContain(`${na}:2  upsert  title="settled"`)
    expect(lines.find((l) => l.includes(`${nb}:2`))).toContain('concurrent with')
    const json = await cli(['history', 'notes', 'x', '--data-dir', b.dataDir, '--json'])
    expect((JSON.parse(json.stdout) as Page).items).toEqual(ha)
    const verify = await cli(['verify-history', '--data-dir', c.dataDir])
    expect(verify.code).toBe(0)
    expect(verify.stdout).toMatch(/^ok: \d+ change records, \d+ history entries, 0 purged/)
    const bad = await cli(['history', 'notes', 'nothing-here', '--data-dir', a.dataDir])
    expect(bad.code).toBe(1)
    expect(bad.stderr.trim()).toBe('meshsync: entity notes/nothing-here not found (ENTITY_NOT_FOUND)')
  })
})
