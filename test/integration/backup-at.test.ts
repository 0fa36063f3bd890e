import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Unpacked } from '../../daemon/backup/files-read.ts'
import { BackupService, type BackupSummary } from '../../daemon/backup/service.ts'
import { compareKeys } from '../../daemon/storage/key-order.ts'
import { LevelKvStore } from '../../daemon/storage/level-kv-store.ts'
import { EntityStore, type EntityView } from '../../daemon/store/entity-store.ts'
import { quietLogger, randomWrites, seededRandom, stateOf, type EntityState } from '../helpers/backup.ts'
import { inProcessApi } from '../helpers/in-process-api.ts'
import { startS3, type S3Server } from '../helpers/s3.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

/**
 * docs/backups.md, "Reading a backup without restoring": an entity, a text and a namespace listing
 * `at` a set (by id, prefix, `latest`, or a time) are exactly what the store held at that set's
 * snapshot, for every kind of set (full, incrementals, a differential, a synthetic full, a files
 * full), encrypted or not, on a directory and on S3; nothing is restored.
 */

const tempDir = useTempDirs('all')
const HOUR = 3600_000
const START = Date.parse('2026-11-30T00:00:00Z')
const PASSPHRASE = 'correct horse battery staple'
const KDF = { N: 2 ** 10, r: 8, p: 1 }

interface Taken {
  readonly set: BackupSummary
  readonly state: Record<string, EntityState>
}

let s3: S3Server
beforeAll(async () => {
  s3 = await startS3()
})
afterAll(async () => {
  await s3?.close()
})

const kinds: [string, boolean, () => Promise<string>][] = [
  ['a directory', false, async () => join(await tempDir('meshsync-at-'), 'repo')],
  ['a directory, encrypted', true, async () => join(await tempDir('meshsync-at-'), 'repo')],
  ['S3', false, async () => s3.target(`plain-${Date.now()}`)],
  ['S3, encrypted', true, async () => s3.target(`sealed-${Date.now()}`)],
]

describe.each(kinds)('reading entities at a backup, on %s', (_kind, encrypted, makeTarget) => {
  let store: EntityStore
  let service: BackupService
  let now = START
  const taken: Taken[] = []
  const opts = (at: string): { at: string } => ({ at })

  beforeAll(async () => {
    const target = await makeTarget()
    store = new EntityStore(
      { kv: new LevelKvStore(join(await tempDir('meshsync-at-store-'), 'db')), nodeId: 'a1b2c3d4e5f60718', logger: quietLogger },
      { stateDeltas: { minBaseBytes: 64, maxDeltas: 3 } },
    )
    await store.open()
    service = new BackupService(
      { store, logger: quietLogger },
      { target, ...(encrypted && { passphrase: PASSPHRASE }), kdf: KDF, now: () => now, repositoryOptions: { s3: s3.client } },
    )
    const rng = seededRandom(7)
    const take = async (make: () => Promise<BackupSummary>, state?: Record<string, EntityState>): Promise<void> => {
      now += HOUR
      const set = await make()
      taken.push({ set, state: state ?? (await stateOf(store.entities())) })
    }
    await randomWrites(store, rng, 120)
    await take(() => service.create({ type: 'full' }))
    await randomWrites(store, rng, 60)
    await take(() => service.create({ type: 'incremental' }))
    await store.wipeNamespace('notes')
    await randomWrites(store, rng, 40)
    await take(() => service.create({ type: 'incremental' }))
    await randomWrites(store, rng, 40)
    await take(() => service.create({ type: 'differential' }))
    // A synthetic full of the second incremental holds what that one held.
    await take(async () => service.synthesize(taken[2]?.set.id as string), taken[2]?.state)
    await randomWrites(store, rng, 30)
    await take(() => service.create({ type: 'full', method: 'files' }))
    await randomWrites(store, rng, 30) // after every set: none of them holds these
    await store.write([{ op: 'put', ns: 'items', id: 'after-every-set', value: { late: true } }])
  })

  afterAll(async () => {
    await service?.stop()
    await store?.close()
  })

  it('took the kinds of set it reads', () => {
    expect(taken.map((t) => `${t.set.method} ${t.set.type}${t.set.synthetic ? '*' : ''}`)).toEqual([
      'entities full',
      'entities incremental',
      'entities incremental',
      'entities differential',
      'entities full*',
      'files full',
    ])
    expect(taken.every((t) => t.set.encrypted === encrypted)).toBe(true)
    expect(taken[2]?.set.diffs).toBeGreaterThan(0)
  })

  it('every entity, text and namespace page of every set is what the store held at its snapshot', { timeout: 120_000 }, async () => {
    let deleted = 0
    let texts = 0
    for (const { set, state } of taken) {
      // The synthetic full has the snapshot of the set it was made from: read it by id.
      const at = opts(set.id)
      for (const [key, want] of Object.entries(state)) {
        const [ns, id] = key.split('/') as [string, string]
        if (want.deleted) {
          await expect(service.entityAt(ns, id, at)).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
          deleted++
          continue
        }
        const view = await service.entityAt(ns, id, at)
        expect(view.value, `${key} at ${set.id}`).toEqual(want.value)
        expect(view.version).toEqual(want.vv)
        expect(view.backup).toEqual({ id: set.id, snapshotAt: set.snapshotAt, node: set.node })
        for (const [name, text] of Object.entries(want.texts)) {
          expect((await service.textAt(ns, id, name, at)).text, `${key} text ${name} at ${set.id}`).toBe(text)
          texts++
        }
      }
      for (const ns of ['items', 'notes']) {
        const live = Object.entries(state)
          .filter(([key, e]) => key.startsWith(`${ns}/`) && !e.deleted)
          .map(([key]) => key.slice(ns.length + 1))
          .sort(compareKeys)
        const listed: EntityView[] = []
        let after: string | undefined
        for (;;) {
          const page = await service.listAt(ns, { limit: 7, after }, at)
          listed.push(...page.items)
          if (page.next === undefined) break
          after = page.next
        }
        expect(listed.map((e) => e.id), `${ns} at ${set.id}`).toEqual(live)
        for (const e of listed) expect(e.value).toEqual(state[`${ns}/${e.id}`]?.value)
        const prefixed = await service.listAt(ns, { prefix: 'e1', limit: 1000 }, at)
        expect(prefixed.items.map((e) => e.id)).toEqual(live.filter((id) => id.startsWith('e1')))
      }
    }
    expect(deleted).toBeGreaterThan(0)
    expect(texts).toBeGreaterThan(0)
    // What was written after the last set is in none of them.
    expect((await store.get('items', 'after-every-set')).value).toEqual({ late: true })
    await expect(service.entityAt('items', 'after-every-set', opts('latest'))).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
  })

  it('`at` a time reads the newest set taken at or before it; a prefix and `latest` name a set', async () => {
    const pick = async (at: string): Promise<string> => (await service.listAt('items', { limit: 1 }, opts(at))).backup.id
    const [full, i1, i2] = taken.map((t) => t.set) as [BackupSummary, BackupSummary, BackupSummary]
    expect(await pick(full.snapshotAt)).toBe(full.id)
    expect(await pick(new Date(Date.parse(i1.snapshotAt) + HOUR / 2).toISOString())).toBe(i1.id)
    expect(await pick(new Date(Date.parse(i2.snapshotAt) - 1).toISOString())).toBe(i1.id)
    expect(await pick('2099-01-01T00:00:00Z')).toBe(taken.at(-1)?.set.id)
    expect(await pick('latest')).toBe(taken.at(-1)?.set.id)
    expect(await pick(i2.id.slice(0, 12))).toBe(i2.id)
    await expect(pick(new Date(START).toISOString())).rejects.toMatchObject({ code: 'NO_BACKUP_BEFORE' })
    await expect(pick('2026-13-45T00:00:00Z')).rejects.toMatchObject({ code: 'INVALID_QUERY' })
    await expect(pick('nosuchbackup')).rejects.toMatchObject({ code: 'BACKUP_NOT_FOUND' })
  })

  it('refuses a wrong or missing passphrase, and one for a repository that has none', async () => {
    const id = taken[0]?.set.id as string
    if (encrypted) {
      await expect(service.entityAt('items', 'e1', { at: id, passphrase: 'wrong' })).rejects.toMatchObject({ code: 'WRONG_PASSPHRASE' })
      const bare = new BackupService({ store, logger: quietLogger }, { target: await targetOf(taken[0] as Taken), repositoryOptions: { s3: s3.client } })
      await expect(bare.listAt('items', { limit: 1 }, { at: id })).rejects.toMatchObject({ code: 'PASSPHRASE_REQUIRED' })
      await bare.stop()
    } else {
      await expect(service.listAt('items', { limit: 1 }, { at: id, passphrase: 'any' })).rejects.toMatchObject({ code: 'REPOSITORY_NOT_ENCRYPTED' })
    }
  })

  it('unpacks a files set once for a series of reads', async () => {
    const files = taken.at(-1)?.set as BackupSummary
    const opened = vi.spyOn(Unpacked, 'open')
    const closed = vi.spyOn(Unpacked.prototype, 'close')
    // A service of its own: nothing unpacked yet (the describe's takes the second files set).
    const writer = service
    const reader = new BackupService({ store, logger: quietLogger }, { target: await targetOf(taken[0] as Taken), ...(encrypted && { passphrase: PASSPHRASE }), repositoryOptions: { s3: s3.client } })
    try {
      const key = Object.keys(taken.at(-1)?.state ?? {}).find((k) => !taken.at(-1)?.state[k]?.deleted) as string
      const [ns, id] = key.split('/') as [string, string]
      for (let i = 0; i < 3; i++) await reader.entityAt(ns, id, opts(files.id))
      await reader.listAt(ns, { limit: 5 }, opts(files.id))
      expect(opened).toHaveBeenCalledTimes(1)
      // An entity set read in between does not drop it.
      await reader.entityAt(ns, id, opts(taken[0]?.set.id as string)).catch(() => undefined)
      await reader.entityAt(ns, id, opts(files.id))
      expect(opened).toHaveBeenCalledTimes(1)
      expect(closed).toHaveBeenCalledTimes(0)
      // Another files set takes its place: the first one is removed.
      now += HOUR
      const second = await writer.create({ type: 'full', method: 'files' })
      await reader.entityAt(ns, id, opts(second.id))
      expect(opened).toHaveBeenCalledTimes(2)
      expect(closed).toHaveBeenCalledTimes(1)
      // Stopping removes the one kept.
      await reader.stop()
      expect(closed).toHaveBeenCalledTimes(2)
    } finally {
      opened.mockRestore()
      closed.mockRestore()
      await reader.stop()
    }
  })
})

/** The repository a set was taken into (as `create` reports it). */
async function targetOf(t: Taken): Promise<string> {
  return (t.set as BackupSummary & { target: string }).target
}

describe('reading at a backup through the API', () => {
  it('GET entity, text and list with `at`, the passphrase in a header; `target` alone is INVALID_QUERY', async () => {
    const dir = join(await tempDir('meshsync-at-api-'), 'repo')
    const api = await inProcessApi({ backups: (store) => new BackupService({ store, logger: quietLogger }, { target: dir, kdf: KDF, passphrase: PASSPHRASE }) })
    try {
      const put = await api.app.inject({ method: 'PUT', url: '/v1/ns/notes/entities/n1', payload: { title: 'then' } })
      expect(put.statusCode).toBe(200)
      await api.app.inject({ method: 'POST', url: '/v1/ns/notes/entities/n1/text/body', payload: { ops: [[0, 0, 'old text']] } })
      const made = await api.app.inject({ method: 'POST', url: '/v1/backups', payload: { type: 'full' } })
      expect(made.statusCode).toBe(201)
      const set = made.json<{ id: string; snapshotAt: string }>()
      await api.app.inject({ method: 'PUT', url: '/v1/ns/notes/entities/n1', payload: { title: 'now' } })
      await api.app.inject({ method: 'PUT', url: '/v1/ns/notes/entities/n2', payload: { title: 'new' } })

      const get = (url: string, headers: Record<string, string> = {}) => api.app.inject({ method: 'GET', url, headers })
      const entity = await get(`/v1/ns/notes/entities/n1?at=${set.id}`)
      expect(entity.statusCode).toBe(200)
      expect(entity.json()).toMatchObject({ ns: 'notes', id: 'n1', value: { title: 'then' }, backup: { id: set.id, snapshotAt: set.snapshotAt } })
      expect((await get('/v1/ns/notes/entities/n1')).json()).toMatchObject({ value: { title: 'now' } })
      expect((await get(`/v1/ns/notes/entities/n1/text/body?at=latest&target=${encodeURIComponent(dir)}`)).json()).toMatchObject({ text: 'old text', backup: { id: set.id } })
      const list = await get(`/v1/ns/notes/entities?at=${encodeURIComponent(set.snapshotAt)}`)
      expect(list.json<{ items: { id: string }[] }>().items.map((e) => e.id)).toEqual(['n1'])
      const missing = await get(`/v1/ns/notes/entities/n2?at=${set.id}`)
      expect(missing.statusCode).toBe(404)
      expect(missing.json()).toMatchObject({ error: { code: 'ENTITY_NOT_FOUND' } })
      const wrong = await get(`/v1/ns/notes/entities/n1?at=${set.id}`, { 'x-backup-passphrase': 'wrong' })
      expect(wrong.statusCode).toBe(403)
      expect(wrong.json()).toMatchObject({ error: { code: 'WRONG_PASSPHRASE' } })
      expect((await get(`/v1/ns/notes/entities/n1?at=${set.id}`, { 'x-backup-passphrase': PASSPHRASE })).statusCode).toBe(200)
      expect((await get(`/v1/ns/notes/entities/n1?at=${set.id}`, { 'x-backup-passphrase': '' })).json()).toMatchObject({ error: { code: 'PASSPHRASE_REQUIRED' } })
      expect((await get(`/v1/ns/notes/entities/n1?target=${encodeURIComponent(dir)}`)).json()).toMatchObject({ error: { code: 'INVALID_QUERY' } })
      expect((await get('/v1/ns/notes/entities/n1?at=2000-01-01T00:00:00Z')).json()).toMatchObject({ error: { code: 'NO_BACKUP_BEFORE' } })
      expect((await get('/v1/ns/notes/entities/n1?at=zzz')).statusCode).toBe(404)
      expect((await get('/v1/ns/notes/entities/n1?at=latest&target=relative/path')).json()).toMatchObject({ error: { code: 'INVALID_TARGET' } })
    } finally {
      await api.close()
    }
  })

  it('a node without backups answers NO_BACKUP_TARGET', async () => {
    const api = await inProcessApi()
    try {
      const res = await api.app.inject({ method: 'GET', url: '/v1/ns/notes/entities/n1?at=latest' })
      expect(res.json()).toMatchObject({ error: { code: 'NO_BACKUP_TARGET' } })
    } finally {
      await api.close()
    }
  })
})
