import { randomBytes } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { MAX_DELTAS } from '../../daemon/store/state-parts.ts'
import { startDaemon, stopAllDaemons, type ApiCall, type DaemonHandle } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * docs/architecture.md (Durability): a write is acknowledged only once its batch is fsynced, so kill -9 at any moment
 * loses no acknowledged write and corrupts nothing. Writers keep 16 requests in flight (PUTs,
 * and some 4-op batches, over the socket and TCP) while the daemon is SIGKILLed; then the daemon
 * restarts on the same data dir and everything acknowledged must be there, exactly.
 */

type Value = { cycle: number; n: number; blob: string; nested: { tags: string[]; even: boolean } }
interface Entity {
  id: string
  value: Value
}

const NS = 'crash'
const CYCLES = 3
const IN_FLIGHT = 16
const BATCH = 4

describe('crash safety', () => {
  const tempDir = useTempDirs('all')
  afterAll(stopAllDaemons)

  it(`kill -9 while writing loses no acknowledged write (${CYCLES} kill/restart cycles)`, { timeout: 120_000 }, async () => {
    const dataDir = await tempDir('meshsync-crash-')
    /** Every value ever sent, by id (a write in flight at the kill may or may not have landed). */
    const attempted = new Map<string, Value>()
    /** Writes that got a 200. */
    const acked = new Map<string, Value>()
    /** Ids of each batch, to check all-or-nothing. */
    const batches: string[][] = []
    let d: DaemonHandle = await startDaemon({ dataDir })

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      let n = 0
      let ackedThisCycle = 0
      let killed = false
      const unexpected: string[] = []
      const valueOf = (i: number): Value => ({
        cycle,
        n: i,
        blob: randomBytes(8 + (i % 64)).toString('base64'),
        nested: { tags: [`c${cycle}`, `m${i % 5}`], even: i % 2 === 0 },
      })

      const writer = async (w: number): Promise<void> => {
        const call: ApiCall = w % 2 === 0 ? d.sock : d.tcp
        while (!killed) {
          const ids = Array.from({ length: w < 2 ? BATCH : 1 }, () => `c${cycle}-${String(n++).padStart(6, '0')}`)
          const values = ids.map((id) => {
            const value = valueOf(Number(id.slice(id.indexOf('-') + 1)))
            attempted.set(id, value)
            return value
          })
          let status: number
          let body: unknown
          try {
            const res =
              ids.length === 1
                ? await call('PUT', `/v1/ns/${NS}/entities/${ids[0]}`, values[0] as Value)
                : await call('POST', '/v1/batch', { ops: ids.map((id, k) => ({ op: 'put', ns: NS, id, value: values[k] })) })
            status = res.status
            body = res.json
          } catch (error) {
            // The connection died with the daemon: that write is unacknowledged.
            if (!killed) unexpected.push(`writer ${w}: ${(error as Error).message}`)
            return
          }
          if (ids.length > 1) batches.push(ids)
          if (status !== 200) {
            if (!killed) unexpected.push(`writer ${w}: HTTP ${status} ${JSON.stringify(body)}`)
            continue
          }
          const views = ids.length === 1 ? [body as Entity] : (body as { results: Entity[] }).results
          expect(views.map((v) => v.value)).toEqual(values)
          ids.forEach((id, k) => acked.set(id, values[k] as Value))
          ackedThisCycle += ids.length
        }
      }

      const started = Date.now()
      const killAfterMs = 1000 + Math.floor(Math.random() * 1000)
      const writers = Array.from({ length: IN_FLIGHT }, (_, w) => writer(w))
      await waitFor(() => Date.now() - started >= killAfterMs && ackedThisCycle > 0, { timeout: 30_000, interval: 10, message: 'writes under way' })
      killed = true
      d.kill('SIGKILL')
      expect(await d.exited).toEqual({ code: null, signal: 'SIGKILL' })
      await Promise.all(writers)
      expect(unexpected).toEqual([])
      expect(ackedThisCycle).toBeGreaterThan(0)

      // Restart on the same data dir: it opens cleanly and holds every acknowledged write.
      d = await startDaemon({ dataDir })
      const status = await d.sock<{ versionVector: Record<string, number>; entities: number; namespaces: Record<string, number> }>('GET', '/v1/status')
      expect(status.status).toBe(200)

      const stored = new Map<string, Value>()
      let after: string | undefined
      for (;;) {
        const page = await d.sock<{ items: Entity[]; next?: string }>('GET', `/v1/ns/${NS}/entities?limit=1000${after ? `&after=${after}` : ''}`)
        expect(page.status).toBe(200)
        for (const e of page.json.items) stored.set(e.id, e.value)
        if (page.json.next === undefined) break
        after = page.json.next
      }
      const lost = [...acked.keys()].filter((id) => !stored.has(id))
      expect(lost, `acknowledged writes lost after kill -9 in cycle ${cycle}`).toEqual([])
      for (const [id, value] of acked) expect(stored.get(id), id).toEqual(value)
      // Whatever else is there was really written, exactly as sent (nothing torn or invented).
      for (const [id, value] of stored) expect(value, id).toEqual(attempted.get(id))
      // A batch landed whole or not at all.
      for (const ids of batches) {
        const present = ids.filter((id) => stored.has(id)).length
        expect([0, ids.length], `batch ${ids[0]}…`).toContain(present)
      }
      // Counters agree with the data: one change per entity written, the live count persisted.
      expect(status.json.namespaces[NS]).toBe(stored.size)
      expect(status.json.versionVector[d.info.nodeId]).toBe(stored.size + cycle)
      // The change feed has each entity once.
      const fed: string[] = []
      for (let cursor = '0'; ; ) {
        const page = await d.sock<{ changes: { id: string }[]; cursor: string }>('GET', `/v1/ns/${NS}/changes?since=${cursor}&limit=10000`)
        fed.push(...page.json.changes.map((c) => c.id))
        if (page.json.changes.length === 0) break
        cursor = page.json.cursor
      }
      expect(fed.length).toBe(stored.size)
      expect(new Set(fed).size).toBe(stored.size)
      // The history index agrees with the change log (each entry went in its record's batch).
      const verify = await d.sock<{ ok: boolean; records: number; entries: number }>('POST', '/v1/history/verify')
      expect(verify.json).toMatchObject({ ok: true, missing: [], extra: [], purged: 0 })
      expect(verify.json.records).toBe(status.json.versionVector[d.info.nodeId])
      expect(verify.json.entries).toBe(verify.json.records)
      for (const id of [...acked.keys()].slice(-3)) {
        const history = await d.sock<{ items: { values: unknown }[] }>('GET', `/v1/ns/${NS}/entities/${id}/history`)
        expect(history.json.items.map((i) => i.values), id).toEqual([acked.get(id)])
      }

      // A new write succeeds and reads back.
      const probe = await d.sock<Entity>('PUT', `/v1/ns/probe/entities/after-${cycle}`, { cycle })
      expect(probe.status).toBe(200)
      expect((await d.tcp<Entity>('GET', `/v1/ns/probe/entities/after-${cycle}`)).json.value).toEqual({ cycle })
    }

    const exit = await d.stop()
    expect(exit).toEqual({ code: 0, signal: null })
    expect(d.stderr()).not.toMatch(/"level":(50|60)/)
    expect(acked.size).toBeGreaterThan(CYCLES * 10)
    console.log(`crash: ${acked.size} acknowledged of ${attempted.size} attempted writes survived ${CYCLES} kill -9 cycles`)
  })

  it(`kill -9 while splicing a large text (stored as a base and per-commit updates) loses no acknowledged splice`, { timeout: 120_000 }, async () => {
    const dataDir = await tempDir('meshsync-crash-text-')
    const path = `/v1/ns/${NS}/entities/doc/text/body`
    let d: DaemonHandle = await startDaemon({ dataDir })
    // 20 KB: past the size from which commits store only their update (state-parts.ts).
    expect((await d.sock('POST', path, { ops: [[0, 0, 'x'.repeat(20_000)]] })).status).toBe(200)
    const attempted = new Set<string>()
    const acked = new Set<string>()
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      let killed = false
      let ackedThisCycle = 0
      const unexpected: string[] = []
      const writer = async (w: number): Promise<void> => {
        const call: ApiCall = w % 2 === 0 ? d.sock : d.tcp
        for (let k = 0; !killed; k++) {
          const token = `[c${cycle}w${w}k${k}]`
          attempted.add(token)
          let status: number
          try {
            status = (await call('POST', path, { ops: [[0, 0, token]] })).status
          } catch (error) {
            if (!killed) unexpected.push(`writer ${w}: ${(error as Error).message}`)
            return
          }
          if (status === 200) {
            acked.add(token)
            ackedThisCycle++
          } else if (!killed) unexpected.push(`writer ${w}: HTTP ${status}`)
        }
      }
      const started = Date.now()
      const killAfterMs = 1000 + Math.floor(Math.random() * 1000)
      const writers = Array.from({ length: 8 }, (_, w) => writer(w))
      // More than MAX_DELTAS commits each cycle: the base is rewritten at least once before the kill.
      await waitFor(() => Date.now() - started >= killAfterMs && ackedThisCycle > MAX_DELTAS + 10, { timeout: 30_000, interval: 10, message: 'splices under way' })
      killed = true
      d.kill('SIGKILL')
      expect(await d.exited).toEqual({ code: null, signal: 'SIGKILL' })
      await Promise.all(writers)
      expect(unexpected).toEqual([])

      d = await startDaemon({ dataDir })
      const res = await d.sock<{ text: string }>('GET', path)
      expect(res.status).toBe(200)
      const text = res.json.text
      const tokens = text.match(/\[c\d+w\d+k\d+\]/g) ?? []
      // Every acknowledged splice is there exactly once; whatever else is there was sent.
      const count = new Map<string, number>()
      for (const t of tokens) count.set(t, (count.get(t) ?? 0) + 1)
      expect([...acked].filter((t) => count.get(t) !== 1), `acknowledged splices lost or doubled in cycle ${cycle}`).toEqual([])
      expect(tokens.filter((t) => !attempted.has(t))).toEqual([])
      expect(text.endsWith('x'.repeat(20_000))).toBe(true)
      // Every splice committed is one change of the entity's history, and the index agrees with the log.
      expect((await d.sock<{ ok: boolean }>('POST', '/v1/history/verify')).json).toMatchObject({ ok: true, missing: [], extra: [] })
      const vv = (await d.sock<{ versionVector: Record<string, number> }>('GET', '/v1/status')).json.versionVector
      const history = await d.sock<{ items: { seq: number; texts: string[] }[] }>('GET', `${path.replace('/text/body', '')}/history?limit=1000`)
      expect(history.json.items.length).toBe(Math.min(1000, vv[d.info.nodeId] ?? 0))
      expect(history.json.items[0]?.seq).toBe(vv[d.info.nodeId])
      expect(history.json.items.every((i) => i.texts.join() === 'body')).toBe(true)
    }
    expect(await d.stop()).toEqual({ code: 0, signal: null })
    expect(d.stderr()).not.toMatch(/"level":(50|60)/)
    console.log(`crash (large text): ${acked.size} acknowledged of ${attempted.size} attempted splices survived ${CYCLES} kill -9 cycles`)
  })
})
