import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DirRepository } from '../../daemon/backup/dir-repository.ts'
import { startDaemon, stopAllDaemons, writeConfig, type DaemonHandle } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { runCli } from '../helpers/run-process.ts'

/** Backups of a real daemon process: API, CLI, status, and a SIGKILL in the middle of one. */

const tempDir = useTempDirs('all')
const cli = (args: readonly string[]): ReturnType<typeof runCli> => runCli(args, { guardMs: 30_000 })

afterAll(async () => {
  await stopAllDaemons()
})

describe('backups through the API and the CLI', () => {
  let d: DaemonHandle
  let repo: string
  let dir: string[]

  beforeAll(async () => {
    const dataDir = await tempDir('meshsync-e2e-')
    repo = await tempDir('meshsync-repo-')
    await writeConfig(dataDir, { backup: { target: repo } })
    d = await startDaemon({ dataDir })
    dir = ['--data-dir', d.dataDir]
    for (const id of ['a', 'b', 'c']) expect((await d.sock('PUT', `/v1/ns/items/entities/${id}`, { id, v: 1 })).status).toBe(200)
    expect((await d.sock('POST', '/v1/ns/items/entities/a/text/body', { ops: [[0, 0, 'first text']] })).status).toBe(200)
  })

  afterAll(async () => {
    await d?.stop()
  })

  it('POST /v1/backups, GET /v1/backups, verify, status and metrics', async () => {
    const before = Date.now()
    const created = await d.sock<{ id: string; type: string; entities: number; target: string }>('POST', '/v1/backups', { type: 'full' })
    expect(created.status).toBe(201)
    expect(created.json).toMatchObject({ type: 'full', entities: 3, target: repo })
    const list = await d.tcp<{ sets: { id: string }[] }>('GET', `/v1/backups?target=${encodeURIComponent(repo)}`)
    expect(list.json.sets.map((s) => s.id)).toEqual([created.json.id])
    const verify = await d.sock<{ ok: boolean; objects: number }>('POST', `/v1/backups/${created.json.id}/verify`, {})
    expect(verify.json).toMatchObject({ ok: true })
    const status = await d.sock<{ backups: { lastSuccess: { id: string; bytes: number }; lastFailure: null; ageMs: number } }>('GET', '/v1/status')
    expect(status.json.backups).toMatchObject({ lastSuccess: { id: created.json.id }, lastFailure: null })
    // The age of the backup's snapshot, taken after `before`: never negative, never older than this test.
    expect(status.json.backups.ageMs).toBeGreaterThanOrEqual(0)
    expect(status.json.backups.ageMs).toBeLessThanOrEqual(Date.now() - before)
    const metrics = await d.tcp('GET', '/metrics')
    expect(metrics.text).toMatch(/meshsync_backup_last_bytes [1-9]/)
  })

  it('refuses bad input with codes', async () => {
    expect((await d.sock<{ error: { code: string } }>('POST', '/v1/backups', { type: 'weekly' })).json.error.code).toBe('INVALID_BODY')
    expect((await d.sock<{ error: { code: string } }>('POST', '/v1/backups', { type: 'full', target: 'ftp://x/y' })).json.error.code).toBe('INVALID_TARGET')
    const missing = await d.sock<{ error: { code: string } }>('POST', '/v1/backups/20990101T000000.000Z-deadbeef/verify', {})
    expect([missing.status, missing.json.error.code]).toEqual([404, 'BACKUP_NOT_FOUND'])
    const restore = await d.sock<{ error: { code: string } }>('POST', '/v1/restore', { backup: 'nope' })
    expect(restore.json.error.code).toBe('BACKUP_NOT_FOUND')
    const status = await d.sock<{ backups: { lastFailure: { code: string } } }>('GET', '/v1/status')
    expect(status.json.backups.lastFailure.code).toBe('INVALID_TARGET')
  })

  it('CLI: create, list, verify, restore one entity live, restore into a new data dir', async () => {
    expect((await d.sock('PATCH', '/v1/ns/items/entities/b', { v: 2 })).status).toBe(200)
    const create = await cli(['backup', 'create', '--type', 'incremental', '--json', ...dir])
    expect(create).toMatchObject({ code: 0, stderr: '' })
    const inc = JSON.parse(create.stdout) as { id: string; type: string; records: number }
    expect(inc).toMatchObject({ type: 'incremental', records: 1 })

    const list = await cli(['backup', 'list', ...dir])
    expect(list.code).toBe(0)
    expect(list.stdout).toContain(inc.id)
    const verify = await cli(['backup', 'verify', 'latest', ...dir])
    expect(verify).toMatchObject({ code: 0 })
    expect(verify.stdout).toContain('intact')

    // Roll b back to the incremental's state after a later change, through the daemon.
    expect((await d.sock('PUT', '/v1/ns/items/entities/b', { v: 99 })).status).toBe(200)
    const restore = await cli(['restore', inc.id.slice(0, 24), '--ns', 'items', '--id', 'b', '--json', ...dir])
    expect(restore).toMatchObject({ code: 0 })
    expect(JSON.parse(restore.stdout)).toMatchObject({ restored: 1 })
    expect((await d.sock<{ value: unknown }>('GET', '/v1/ns/items/entities/b')).json.value).toEqual({ id: 'b', v: 2 })

    // Disaster recovery: a new data dir, no daemon involved; then a node runs on it.
    const into = join(await tempDir('meshsync-dr-'), 'node')
    const dr = await cli(['restore', 'latest', '--into', into, '--repo', repo, '--cluster-key', join(d.dataDir, 'cluster.key'), '--json'])
    expect(dr).toMatchObject({ code: 0 })
    expect(JSON.parse(dr.stdout)).toMatchObject({ entities: 3 })
    const restored = await startDaemon({ dataDir: into })
    expect((await restored.sock<{ value: unknown }>('GET', '/v1/ns/items/entities/b')).json.value).toEqual({ id: 'b', v: 2 })
    expect((await restored.sock<{ text: string }>('GET', '/v1/ns/items/entities/a/text/body')).json.text).toBe('first text')
    // A restored node has the entities without their change records: their history says so.
    expect((await restored.sock('GET', '/v1/ns/items/entities/b/history')).json).toMatchObject({ items: [], truncated: { reason: 'log-floor' } })
    expect(restored.info.nodeId).not.toBe(d.info.nodeId)
    await restored.stop()
    expect((await cli(['restore', 'latest', '--into', into, '--repo', repo])).code).not.toBe(0)
  })

  it('reads an entity, a text and a namespace as a backup holds them, without restoring (API and CLI)', async () => {
    expect((await d.sock('PUT', '/v1/ns/items/entities/c', { id: 'c', v: 'before' })).status).toBe(200)
    const taken = await d.sock<{ id: string; snapshotAt: string }>('POST', '/v1/backups', { type: 'incremental' })
    expect(taken.status).toBe(201)
    expect((await d.sock('PUT', '/v1/ns/items/entities/c', { id: 'c', v: 'after' })).status).toBe(200)

    const at = await d.tcp<{ value: unknown; backup: { id: string } }>('GET', `/v1/ns/items/entities/c?at=${taken.json.id}`)
    expect(at.json).toMatchObject({ value: { id: 'c', v: 'before' }, backup: { id: taken.json.id } })
    const text = await d.sock<{ text: string }>('GET', `/v1/ns/items/entities/a/text/body?at=${encodeURIComponent(taken.json.snapshotAt)}`)
    expect(text.json.text).toBe('first text')
    const never = await d.sock<{ error: { code: string } }>('GET', '/v1/ns/items/entities/zzz?at=latest')
    expect([never.status, never.json.error.code]).toEqual([404, 'ENTITY_NOT_FOUND'])
    const before = await d.sock<{ error: { code: string } }>('GET', '/v1/ns/items/entities/c?at=2000-01-01T00:00:00Z')
    expect([before.status, before.json.error.code]).toEqual([404, 'NO_BACKUP_BEFORE'])
    // The node itself is untouched.
    expect((await d.sock<{ value: unknown }>('GET', '/v1/ns/items/entities/c')).json.value).toEqual({ id: 'c', v: 'after' })

    const get = await cli(['get', 'items', 'c', '--at', 'latest', '--json', ...dir])
    expect(get).toMatchObject({ code: 0, stderr: '' })
    expect(JSON.parse(get.stdout)).toMatchObject({ value: { id: 'c', v: 'before' } })
    const ls = await cli(['ls', 'items', '--at', taken.json.id.slice(0, 20), '--repo', repo, ...dir])
    expect(ls.code).toBe(0)
    expect(ls.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t')[0])).toEqual(['a', 'b', 'c'])
    const bad = await cli(['get', 'items', 'c', '--repo', repo, ...dir])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('INVALID_ARGUMENT')

    // An encrypted repository: the passphrase from a file, sent in a header.
    const sealed = await tempDir('meshsync-sealed-')
    const secret = join(await tempDir('meshsync-secret-'), 'passphrase')
    await writeFile(secret, 'open sesame\n', { mode: 0o600 })
    expect((await d.sock('POST', '/v1/backups', { type: 'full', target: sealed, passphrase: 'open sesame' })).status).toBe(201)
    const opened = await cli(['get', 'items', 'c', '--at', 'latest', '--repo', sealed, '--passphrase-file', secret, '--json', ...dir])
    expect(opened).toMatchObject({ code: 0, stderr: '' })
    expect(JSON.parse(opened.stdout)).toMatchObject({ value: { id: 'c', v: 'after' } })
    const refused = await cli(['get', 'items', 'c', '--at', 'latest', '--repo', sealed, ...dir])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('PASSPHRASE_REQUIRED')
  })

  it('CLI: restore --into asks for the cluster key, and prints a start command that joins the cluster', async () => {
    const base = await tempDir('meshsync-dr-key-')
    const key = join(d.dataDir, 'cluster.key')
    // Without --cluster-key or --new-cluster: refused, naming the option and this node's key.
    const refused = await cli(['restore', 'latest', '--into', join(base, 'a'), '--repo', repo, ...dir])
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toContain('--cluster-key FILE')
    expect(refused.stderr).toContain(key)
    expect(refused.stderr).toMatch(/\(CLUSTER_KEY_REQUIRED\)\n$/)
    expect(readdirSync(base)).toEqual([])

    // --from, the old name of --repo, still works.
    const joined = await cli(['restore', 'latest', '--into', join(base, 'b'), '--from', repo, '--cluster-key', key, ...dir])
    expect(joined).toMatchObject({ code: 0, stderr: '' })
    expect(readFileSync(join(base, 'b', 'cluster.key'))).toEqual(readFileSync(key))
    expect(joined.stdout).toContain(`cluster key copied from ${key}. Start it with: meshsync start --data-dir ${join(base, 'b')} --bootstrap ${d.info.listen[0]}`)

    const fresh = await cli(['restore', 'latest', '--into', join(base, 'c'), '--repo', repo, '--new-cluster', '--json', ...dir])
    expect(fresh).toMatchObject({ code: 0, stderr: '' })
    expect(JSON.parse(fresh.stdout)).toMatchObject({ clusterKey: null, start: `meshsync start --data-dir ${join(base, 'c')}` })
    expect(readFileSync(join(base, 'c', 'cluster.key'))).not.toEqual(readFileSync(key))
  })

  it('CLI: a flipped byte makes verify fail naming the chunk, and restore refuse', async () => {
    const r = new DirRepository(repo)
    const [id] = (await r.listSets()).slice(-1) as [string]
    const key = `sets/${id}/c000000`
    const bytes = (await r.get(key)) as Uint8Array
    const bad = Uint8Array.from(bytes)
    bad[bad.length - 3] = (bad[bad.length - 3] as number) ^ 0xff
    await r.put(key, bad)
    try {
      const verify = await cli(['backup', 'verify', id, ...dir])
      expect(verify.code).not.toBe(0)
      expect(verify.stderr.trim().split('\n')).toHaveLength(1)
      expect(verify.stderr).toContain(id)
      expect(verify.stderr).toContain('c000000')
      expect(verify.stderr).toContain('BACKUP_CORRUPT')
      const restore = await cli(['restore', id, '--ns', 'items', ...dir])
      expect(restore.code).not.toBe(0)
      expect(restore.stderr).toContain('BACKUP_CORRUPT')
    } finally {
      await r.put(key, bytes)
    }
  })

  it('CLI: prune and synthesize work offline on the repository', async () => {
    const synth = await cli(['backup', 'synthesize', 'latest', '--repo', repo, '--json'])
    expect(synth).toMatchObject({ code: 0 })
    expect(JSON.parse(synth.stdout)).toMatchObject({ type: 'full', synthetic: true })
    const prune = await cli(['backup', 'prune', '--keep-last', '1', '--repo', repo, '--json'])
    expect(prune).toMatchObject({ code: 0 })
    const result = JSON.parse(prune.stdout) as { kept: { id: string }[]; removed: string[] }
    expect(result.kept).toHaveLength(1)
    expect(result.removed.length).toBeGreaterThanOrEqual(2)
    expect(await new DirRepository(repo).listSets()).toEqual([result.kept[0]?.id])
  })

  it('files backups: API and CLI create, list, verify, and a node runs on a restore of one', async () => {
    const refused = await d.sock<{ error: { code: string } }>('POST', '/v1/backups', { type: 'incremental', method: 'files' })
    expect([refused.status, refused.json.error.code]).toEqual([400, 'FILES_BACKUP_FULL_ONLY'])
    const api = await d.sock<{ id: string; type: string; method: string; entities: number }>('POST', '/v1/backups', { type: 'full', method: 'files' })
    expect(api.status).toBe(201)
    expect(api.json).toMatchObject({ type: 'full', method: 'files', entities: 3 })
    const status = await d.sock<{ backups: { lastSuccess: { id: string; method: string } } }>('GET', '/v1/status')
    expect(status.json.backups.lastSuccess).toMatchObject({ id: api.json.id, method: 'files' })
    // The node reopened its database for the checkpoint: it still reads and writes.
    expect((await d.sock('PUT', '/v1/ns/items/entities/c', { id: 'c', v: 7 })).status).toBe(200)
    const create = await cli(['backup', 'create', '--method', 'files', '--json', ...dir])
    expect(create).toMatchObject({ code: 0, stderr: '' })
    const files = JSON.parse(create.stdout) as { id: string; type: string; method: string }
    expect(files).toMatchObject({ type: 'full', method: 'files' })
    const list = await cli(['backup', 'list', ...dir])
    expect(list.stdout).toMatch(new RegExp(`${files.id}\\s+full files`))
    expect(await cli(['backup', 'verify', files.id, ...dir])).toMatchObject({ code: 0 })

    const into = join(await tempDir('meshsync-dr-'), 'node')
    const dr = await cli(['restore', files.id, '--into', into, '--repo', repo, '--cluster-key', join(d.dataDir, 'cluster.key'), '--json'])
    expect(dr).toMatchObject({ code: 0 })
    expect(JSON.parse(dr.stdout)).toMatchObject({ entities: 3 })
    const restored = await startDaemon({ dataDir: into })
    expect((await restored.sock<{ value: unknown }>('GET', '/v1/ns/items/entities/c')).json.value).toEqual({ id: 'c', v: 7 })
    expect((await restored.sock<{ text: string }>('GET', '/v1/ns/items/entities/a/text/body')).json.text).toBe('first text')
    // The node's files hold its change log and history index: the history comes back whole.
    const history = await restored.sock<{ items: unknown[]; truncated?: unknown }>('GET', '/v1/ns/items/entities/b/history')
    expect(history.json.items.length).toBeGreaterThan(0)
    expect(history.json.truncated).toBeUndefined()
    expect(restored.info.nodeId).not.toBe(d.info.nodeId)
    // The restored node writes as itself.
    expect((await restored.sock('PUT', '/v1/ns/items/entities/d', { id: 'd' })).status).toBe(200)
    const vv = (await restored.sock<{ versionVector: Record<string, number> }>('GET', '/v1/status')).json.versionVector
    expect(vv[restored.info.nodeId]).toBe(1)
    await restored.stop()
  })
})

describe('SIGKILL during a backup', () => {
  it('leaves no visible partial set; the next backup breaks the stale lock and succeeds', async () => {
    const dataDir = await tempDir('meshsync-e2e-')
    const repo = await tempDir('meshsync-repo-')
    await writeConfig(dataDir, { backup: { target: repo } })
    const d = await startDaemon({ dataDir })
    expect((await d.sock('POST', '/v1/backups', { type: 'full' })).status).toBe(201) // a first, small set
    // Enough incompressible data for a backup of many chunks (about 24 MiB).
    for (let batch = 0; batch < 12; batch++) {
      const ops = Array.from({ length: 1000 }, (_, i) => ({ op: 'put', ns: 'bulk', id: `e${batch}-${i}`, value: { blob: randomBytes(1500).toString('base64') } }))
      expect((await d.sock('POST', '/v1/batch', { ops })).status).toBe(200)
    }
    const sets = join(repo, 'sets')
    const before = await new DirRepository(repo).listSets()
    void d.sock('POST', '/v1/backups', { type: 'full' }).catch(() => undefined)
    // Kill it as soon as a staged chunk is on disk.
    await waitFor(() => readdirSync(sets).some((name) => name.startsWith('.partial-') && readdirSync(join(sets, name)).some((f) => f.startsWith('c'))), {
      interval: 2,
      timeout: 20_000,
      message: 'a staged chunk',
    })
    d.kill('SIGKILL')
    await d.exited
    expect(await new DirRepository(repo).listSets()).toEqual(before)
    expect(await readdir(join(repo, 'locks'))).toHaveLength(1) // the dead daemon's lock

    const again = await startDaemon({ dataDir })
    const next = await again.sock<{ id: string; entities: number }>('POST', '/v1/backups', { type: 'incremental' })
    expect(next.status).toBe(201)
    expect(next.json.entities).toBe(12_000)
    expect(await readdir(join(repo, 'locks'))).toEqual([])
    expect((await readdir(sets)).filter((n) => n.startsWith('.'))).toEqual([])
    expect(await new DirRepository(repo).listSets()).toEqual([...before, next.json.id])
    expect((await again.sock<{ ok: boolean }>('POST', `/v1/backups/${next.json.id}/verify`, {})).json.ok).toBe(true)
    await again.stop()
  }, 120_000)
})
