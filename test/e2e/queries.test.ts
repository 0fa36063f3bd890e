import { afterAll, describe, expect, it } from 'vitest'
import { startDaemon, stopAllDaemons, writeConfig, type ApiCall, type DaemonHandle } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { runCli as cli } from '../helpers/run-process.ts'

/**
 * Queries and indexes (docs/queries.md) on a real daemon: the routes over TCP (token) and the
 * socket, the CLI, bad input, and kill -9 during a write load on a namespace with 3 indexes,
 * after which `meshsync index verify` finds every index in agreement with the entities.
 */

const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '')
type Entity = { id: string; value: Record<string, unknown> }

describe('queries and indexes on a running daemon', () => {
  const tempDir = useTempDirs('all')
  afterAll(stopAllDaemons)

  it('answers queries over TCP and the socket, manages indexes, refuses bad input naming the part at fault', { timeout: 120_000 }, async () => {
    const dataDir = await tempDir('meshsync-query-')
    await writeConfig(dataDir, { namespaces: { shop: { indexes: { byStatus: ['status', 'priority:desc'] } } }, query: { maxScan: 50 } })
    const d = await startDaemon({ dataDir })
    const ops = Array.from({ length: 40 }, (_, i) => ({ op: 'put', ns: 'shop', id: `o${String(i).padStart(2, '0')}`, value: { status: i % 3 === 0 ? 'open' : 'closed', priority: i % 5, owner: { name: i % 2 ? 'ann' : 'bob' } } }))
    expect((await d.sock('POST', '/v1/batch', { ops })).status).toBe(200)
    for (let i = 0; i < 60; i++) await d.sock('PUT', `/v1/ns/big/entities/b${i}`, { n: i })
    await waitFor(async () => (await d.sock<{ state: string }>('GET', '/v1/ns/shop/indexes/byStatus')).json.state === 'ready', { timeout: 20_000, message: 'byStatus built' })

    for (const call of [d.tcp, d.sock] as ApiCall[]) {
      const res = await call<{ items: Entity[]; plan: { type: string; index: string; order: string } }>('POST', '/v1/ns/shop/query', {
        where: { status: 'open', priority: { $gte: 2 } },
        sort: [['priority', 'desc']],
        fields: ['priority'],
        explain: true,
      })
      expect(res.status).toBe(200)
      const expected = ops.filter((o) => o.value.status === 'open' && o.value.priority >= 2).sort((a, b) => b.value.priority - a.value.priority || (a.id < b.id ? 1 : -1))
      expect(res.json.items.map((e) => e.id)).toEqual(expected.map((o) => o.id))
      expect(res.json.items[0]?.value).toEqual({ priority: expected[0]?.value.priority })
      expect(res.json.plan).toMatchObject({ type: 'index', index: 'byStatus', order: 'index' })
    }
    expect((await d.tcp('POST', '/v1/ns/shop/query', { where: {} }, { authorization: undefined })).status).toBe(401)
    // A scan says so.
    const scan = await d.sock<{ items: Entity[]; plan: { type: string } }>('POST', '/v1/ns/shop/query', { where: { 'owner.name': 'ann' }, limit: 1000 })
    expect(scan.json.plan.type).toBe('scan')
    expect(scan.json.items).toHaveLength(20)
    expect((await d.sock<{ count: number }>('POST', '/v1/ns/shop/query', { where: { status: { $in: ['open'] } }, count: true })).json.count).toBe(14)

    // Bad input: 400 naming the part; the daemon stays healthy.
    const bad: [Record<string, unknown>, string][] = [
      [{ where: { status: { $regex: 'x' } } }, 'where.status.$regex'],
      [{ where: { $or: [{ a: 1 }, { b: { $in: 3 } }] } }, 'where.$or.[1].b.$in'],
      [{ where: { a: { $exists: 'yes' } } }, 'where.a.$exists'],
      [{ sort: [['a', 'up']] }, 'sort[0]'],
      [{ limit: 0 }, 'limit'],
      [{ cursor: 'nope' }, 'cursor'],
      [{ where: { $not: { $not: { $not: { $not: { $not: { $not: { $not: { $not: { a: 1 } } } } } } } } } }, 'where.$not'],
    ]
    for (const [body, part] of bad) {
      const res = await d.sock<{ error: { code: string; message: string } }>('POST', '/v1/ns/shop/query', body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.json.error.code).toBe('INVALID_QUERY')
      expect(res.json.error.message.startsWith(part.replace('.[', '[')), res.json.error.message).toBe(true)
    }
    const needs = await d.sock<{ error: { code: string } }>('POST', '/v1/ns/big/query', { where: { n: 3 } })
    expect(needs.status).toBe(400)
    expect(needs.json.error.code).toBe('QUERY_NEEDS_INDEX')
    expect((await d.sock('GET', '/v1/health')).status).toBe(200)

    // Index management, then the query the index serves.
    expect((await d.sock('PUT', '/v1/ns/big/indexes/byN', { fields: ['n'] })).status).toBe(201)
    expect((await d.sock('PUT', '/v1/ns/big/indexes/byN', { fields: ['n'] })).status).toBe(200)
    expect((await d.sock<{ error: { code: string } }>('PUT', '/v1/ns/big/indexes/byN', { fields: ['m'] })).json.error.code).toBe('INDEX_CONFLICT')
    expect((await d.sock<{ error: { code: string; message: string } }>('PUT', '/v1/ns/big/indexes/bad', { fields: ['a..b'] })).json.error).toMatchObject({ code: 'INVALID_QUERY' })
    await waitFor(async () => (await d.sock<{ state: string }>('GET', '/v1/ns/big/indexes/byN')).json.state === 'ready', { timeout: 20_000, message: 'byN built' })
    const status = await d.sock<{ indexes: { ns: string; name: string; state: string; built: number; total: number }[] }>('GET', '/v1/status')
    expect(status.json.indexes).toContainEqual({ ns: 'big', name: 'byN', state: 'ready', built: 60, total: 60 })
    const metrics = (await d.tcp('GET', '/metrics')).text
    expect(metrics).toContain('meshsync_index_ready{ns="big",index="byN"} 1')
    expect(metrics).toContain('meshsync_index_entities_built{ns="big",index="byN"} 60')
    const byN = await d.sock<{ items: Entity[] }>('POST', '/v1/ns/big/query', { where: { n: { $gt: 56 } } })
    expect(byN.json.items.map((e) => e.id)).toEqual(['b57', 'b58', 'b59'])
    expect((await d.sock<{ error: { code: string } }>('DELETE', '/v1/ns/shop/indexes/byStatus')).json.error.code).toBe('INDEX_CONFLICT')
    expect((await d.sock('DELETE', '/v1/ns/big/indexes/byN')).status).toBe(200)
    expect((await d.sock<{ error: { code: string } }>('GET', '/v1/ns/big/indexes/byN')).json.error.code).toBe('INDEX_NOT_FOUND')

    // The CLI.
    const q = await cli(['query', 'shop', '{"status":"open"}', '--sort', 'priority:desc', '--limit', '3', '--all', '--data-dir', dataDir])
    expect(q.code, q.stderr).toBe(0)
    expect(lines(q.stdout)).toHaveLength(14)
    expect(lines(q.stdout)[0]?.split('\t')[0]).toBe(ops.filter((o) => o.value.status === 'open').sort((a, b) => b.value.priority - a.value.priority || (a.id < b.id ? 1 : -1))[0]?.id)
    const counted = await cli(['query', 'shop', '{"status":"open"}', '--count', '--explain', '--data-dir', dataDir])
    expect(lines(counted.stdout)[0]).toBe('14')
    expect(counted.stdout).toContain('plan\tindex byStatus')
    const scanned = await cli(['query', 'shop', '{"owner.name":"bob"}', '--fields', 'owner', '--data-dir', dataDir])
    expect(scanned.stderr).toContain('answered by a scan')
    expect(lines(scanned.stdout)[0]).toMatch(/^o\d\d\t\{"owner":\{"name":"bob"\}\}$/)
    const created = await cli(['index', 'create', 'shop', 'byOwner', 'owner.name', 'priority:desc', '--data-dir', dataDir])
    expect(created.code, created.stderr).toBe(0)
    const list = await cli(['index', 'list', 'shop', '--data-dir', dataDir])
    expect(list.stdout).toContain('shop/byOwner\towner.name, priority:desc')
    expect(list.stdout).toContain('shop/byStatus\tstatus, priority:desc\tready\t40/40\tconfig')
    const verify = await cli(['index', 'verify', 'shop', '--data-dir', dataDir])
    expect(verify.code, verify.stdout + verify.stderr).toBe(0)
    expect(lines(verify.stdout).every((l) => l.includes('\tok\t'))).toBe(true)
    expect((await cli(['index', 'drop', 'shop', 'byOwner', '--data-dir', dataDir])).code).toBe(0)
    const badCli = await cli(['query', 'shop', '{"a":{"$nope":1}}', '--data-dir', dataDir])
    expect(badCli.code).toBe(1)
    expect(badCli.stderr).toContain('where.a.$nope')
    await d.stop()
  })

  it('kill -9 during a write load with 3 indexes: after a restart every index verifies clean', { timeout: 180_000 }, async () => {
    const dataDir = await tempDir('meshsync-query-crash-')
    await writeConfig(dataDir, { namespaces: { load: { indexes: { byStatus: ['status', 'n:desc'], byOwner: ['owner.name', 'updatedAt:desc'] } } } })
    let d: DaemonHandle = await startDaemon({ dataDir })
    expect((await d.sock('PUT', '/v1/ns/load/indexes/byN', { fields: ['n'] })).status).toBe(201)
    for (let cycle = 0; cycle < 2; cycle++) {
      let killed = false
      let acked = 0
      const writer = async (w: number): Promise<void> => {
        let i = 0
        const call = w % 2 ? d.tcp : d.sock
        while (!killed) {
          const id = `e${(w * 7919 + i++ * 31) % 300}`
          const r = i % 7
          try {
            const res =
              r === 0
                ? await call('DELETE', `/v1/ns/load/entities/${id}`)
                : r < 3
                  ? await call('PATCH', `/v1/ns/load/entities/${id}`, { n: i, status: ['open', 'closed', 'draft'][i % 3] ?? null })
                  : await call('PUT', `/v1/ns/load/entities/${id}`, { n: i, status: ['open', 'closed'][i % 2] ?? 'open', owner: { name: `o${i % 4}` } })
            if (res.status === 200) acked++
          } catch {
            return // the daemon died
          }
        }
      }
      const writers = Array.from({ length: 8 }, (_, w) => writer(w))
      await waitFor(() => acked > 200 + cycle * 50, { timeout: 60_000, interval: 10, message: 'writes under way' })
      killed = true
      d.kill('SIGKILL')
      await d.exited
      await Promise.all(writers)
      d = await startDaemon({ dataDir })
      const verify = await cli(['index', 'verify', 'load', '--json', '--data-dir', dataDir])
      expect(verify.code, verify.stdout + verify.stderr).toBe(0)
      const results = lines(verify.stdout).map((l) => JSON.parse(l) as { name: string; ok: boolean; state: string; entries: number; expected: number })
      expect(results.map((r) => r.name).sort()).toEqual(['byN', 'byOwner', 'byStatus'])
      for (const r of results) expect(r, r.name).toMatchObject({ ok: true, state: 'ready' })
      expect(results[0]?.expected).toBeGreaterThan(0)
    }
    await d.stop()
  })
})
