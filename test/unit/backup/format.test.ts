import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createBackup } from '../../../daemon/backup/create.ts'
import { CodecError } from '../../../crdt/index.ts'
import { decodeChunk, decodeIndex, encodeChunk, IndexBuilder, RECORD_DIFF, RECORD_FULL } from '../../../daemon/backup/format.ts'
import { verifyChain } from '../../../daemon/backup/methods.ts'
import { loadManifest } from '../../../daemon/backup/read.ts'
import { forwardOps, restoreIntoDir, spliceBetween } from '../../../daemon/backup/restore.ts'
import { openSealer } from '../../../daemon/backup/seal.ts'
import { BackupService } from '../../../daemon/backup/service.ts'
import { openRepository } from '../../../daemon/backup/target.ts'
import { loadConfig } from '../../../daemon/config.ts'
import { MemoryKvStore } from '../../../daemon/storage/memory-kv-store.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { writeConfig } from '../../helpers/daemon-process.ts'
import { quietLogger, seededRandom } from '../../helpers/backup.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'
import { waitFor } from '../../helpers/wait-for.ts'

const tempDir = useTempDirs('all')
const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

async function smallStore(): Promise<EntityStore> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'd1b2c3d4e5f60718', logger: quietLogger })
  await store.open()
  await store.write([{ op: 'put', ns: 'items', id: 'a', value: { n: 1 } }])
  return store
}

describe('formats from the future and truncated objects', () => {
  it('a manifest or repository config of a newer format: UNSUPPORTED_FORMAT', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const store = await smallStore()
    const m = await createBackup(repo, store, 'full')
    const key = `sets/${m.id}/manifest.json`
    const original = (await repo.get(key)) as Uint8Array
    await repo.put(key, new TextEncoder().encode(JSON.stringify({ ...m, format: 99 })))
    await expect(loadManifest(repo, m.id)).rejects.toMatchObject({ code: 'UNSUPPORTED_FORMAT', set: m.id })
    await repo.put(key, original)
    await repo.put('config.json', new TextEncoder().encode(JSON.stringify({ format: 7, id: 'x', created: '' })))
    await expect(openSealer(repo, {})).rejects.toMatchObject({ code: 'UNSUPPORTED_FORMAT' })
    await store.close()
  })

  it('a manifest of the pre-release format 1: UNSUPPORTED_FORMAT naming the set', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const store = await smallStore()
    const m = await createBackup(repo, store, 'full')
    await repo.put(`sets/${m.id}/manifest.json`, new TextEncoder().encode(JSON.stringify({ ...m, format: 1 })))
    await expect(loadManifest(repo, m.id)).rejects.toMatchObject({ code: 'UNSUPPORTED_FORMAT', set: m.id })
    // A backup of the node after it is a new full (nothing to diff against).
    expect(await createBackup(repo, store, 'incremental')).toMatchObject({ type: 'full', parent: null })
    await store.close()
  })

  it('diff metas survive the chunk codec exactly, whatever numbers and keys they hold', () => {
    const metas = [
      { vv: { a1: 100005 }, heads: [{ origin: 'a1', seq: 100005, op: 'upsert', context: { a1: 501 }, fields: ['qty'] }], updatedAt: 1795705885047, feedSeq: 100006 },
      { vv: { a1: 100006 }, heads: [{ origin: 'a1', seq: 100006, op: 'upsert', context: { a1: 601 }, fields: ['qty'] }], updatedAt: 1795705885047, feedSeq: 100007 },
      { vv: { a1: 3, b2: 9 }, fieldHeads: { x: [{ origin: 'b2', seq: 9, value: { n: -4, f: 1.5, big: 2 ** 60, s: 'item 301', z: 0, arr: [1, [2, -3]] } }] }, '10': 7, deleted: true },
      { vv: { a1: Number.MAX_SAFE_INTEGER }, feedSeq: -Number.MAX_SAFE_INTEGER, n: null, t: true },
    ].map((m) => enc(JSON.stringify(m)))
    // A field named `__proto__` (an own key, as JSON.parse makes it) stays a key.
    metas[2] = enc(metas[2] ? new TextDecoder().decode(metas[2]).replace('"fieldHeads":{', '"fieldHeads":{"__proto__":[{"origin":"a1","seq":1}],') : '')
    const chunk = encodeChunk({ kinds: Uint8Array.from([RECORD_DIFF, RECORD_DIFF, RECORD_FULL, RECORD_DIFF, RECORD_DIFF]), metas: [metas[0], metas[1], enc('{"whole":1}'), metas[2], metas[3]] as Uint8Array[], states: [enc('a'), enc('b'), enc('c'), enc(''), enc('d')], diffDigest: new Uint8Array(32) })
    const back = decodeChunk(chunk)
    expect(back.metas.map((m) => JSON.parse(new TextDecoder().decode(m)))).toEqual([metas[0], metas[1], enc('{"whole":1}'), metas[2], metas[3]].map((m) => JSON.parse(new TextDecoder().decode(m))))
    expect(new TextDecoder().decode(back.metas[3])).toContain('"__proto__":[{"origin":"a1","seq":1}]')
    expect(back.states.map((x) => new TextDecoder().decode(x))).toEqual(['a', 'b', 'c', '', 'd'])
  })

  it('chunk and index decoders answer any damage with a CodecError', () => {
    const chunk = encodeChunk({ kinds: Uint8Array.from([RECORD_FULL, RECORD_DIFF]), metas: [enc('{"a":1}'), enc('{}')], states: [enc('xyz'), enc('')], diffDigest: new Uint8Array(32).fill(7) })
    const builder = new IndexBuilder()
    builder.add('items\u0000a')
    builder.add('items\u0000b')
    const index = builder.encode(['notes'], [])
    expect(decodeChunk(chunk).metas.map((m) => Buffer.from(m).toString())).toEqual(['{"a":1}', '{}'])
    expect(decodeIndex(index)).toEqual({ keys: ['items\u0000a', 'items\u0000b'], resets: ['notes'], removed: [] })
    const rng = seededRandom(5)
    for (const [bytes, decode] of [
      [chunk, decodeChunk],
      [index, decodeIndex],
    ] as const) {
      for (let i = 0; i < 400; i++) {
        const damaged = Uint8Array.from(bytes)
        if (i % 2 === 0) damaged[Math.floor(rng() * damaged.length)] = Math.floor(rng() * 256)
        const cut = i % 3 === 0 ? damaged.subarray(0, Math.floor(rng() * damaged.length)) : damaged
        try {
          decode(cut)
        } catch (error) {
          expect(error).toBeInstanceOf(CodecError)
        }
      }
    }
    // Keys out of order, or not entity keys.
    const unordered = new IndexBuilder()
    unordered.add('items\u0000b')
    unordered.add('items\u0000a')
    expect(() => decodeIndex(unordered.encode([], []))).toThrow(CodecError)
    const bare = new IndexBuilder()
    bare.add('items')
    expect(() => decodeIndex(bare.encode([], []))).toThrow(CodecError)
  })

  it('a record that does not parse under a valid SHA-256 (a writer bug, a crafted repository): deep verify names its chunk, restore refuses and leaves nothing', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const store = await smallStore()
    const m = await createBackup(repo, store, 'full')
    const { sealer } = await openSealer(repo, {})
    const forged = encodeChunk({ kinds: Uint8Array.from([RECORD_FULL]), metas: [enc('{"vv": not json')], states: [enc('not a yjs update')] })
    const stored = await sealer.seal(forged, `${m.id}/c000000`)
    await repo.put(`sets/${m.id}/c000000`, stored)
    const ref = { ...(m.chunks[0] as (typeof m.chunks)[0]), sha256: createHash('sha256').update(stored).digest('hex'), size: stored.length }
    const manifest = { ...m, chunks: [ref], bytes: m.index.size + ref.size }
    await repo.put(`sets/${m.id}/manifest.json`, enc(JSON.stringify(manifest)))
    expect((await verifyChain(repo, sealer, manifest)).ok).toBe(true) // structure and hashes hold
    const deep = await verifyChain(repo, sealer, manifest, { deep: true })
    expect(deep.problems).toEqual([expect.objectContaining({ set: m.id, object: 'c000000', code: 'BACKUP_CORRUPT' })])
    const into = join(await tempDir('meshsync-restore-'), 'node')
    await expect(restoreIntoDir(repo, sealer, manifest, into, { logger: quietLogger })).rejects.toMatchObject({ code: 'BACKUP_CORRUPT', set: m.id, object: 'c000000' })
    expect(existsSync(into)).toBe(false)
    await store.close()
  })

  it('a truncated chunk is named by verify', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const store = await smallStore()
    const m = await createBackup(repo, store, 'full')
    const key = `sets/${m.id}/c000000`
    await repo.put(key, ((await repo.get(key)) as Uint8Array).subarray(0, 10))
    const { sealer } = await openSealer(repo, {})
    const result = await verifyChain(repo, sealer, m)
    expect(result.problems).toEqual([expect.objectContaining({ object: 'c000000', code: 'BACKUP_CORRUPT' })])
    await store.close()
  })
})

describe('forward changes for a live restore', () => {
  it('spliceBetween turns one text into another with one splice, never splitting a surrogate pair', () => {
    const rng = seededRandom(3)
    const alphabet = ['a', 'b', ' ', '😀', '😁', 'é']
    const word = (): string => Array.from({ length: Math.floor(rng() * 8) }, () => alphabet[Math.floor(rng() * alphabet.length)]).join('')
    for (let i = 0; i < 500; i++) {
      const from = word()
      const to = word()
      const s = spliceBetween(from, to)
      if (from === to) {
        expect(s).toBeUndefined()
        continue
      }
      const [pos, del, ins] = s as [number, number, string]
      expect(from.slice(0, pos) + ins + from.slice(pos + del)).toBe(to)
      expect(ins.isWellFormed()).toBe(true)
      expect(from.slice(0, pos).isWellFormed()).toBe(true)
    }
  })

  it('forwardOps: a put when the record differs, a splice per changed text', () => {
    expect(forwardOps('n', 'i', { a: 1 }, {}, { a: 1 }, {})).toEqual([])
    expect(forwardOps('n', 'i', { a: 1, b: { x: 1, y: 2 } }, {}, { b: { y: 2, x: 1 }, a: 1 }, {})).toEqual([])
    expect(forwardOps('n', 'i', { a: 1 }, { t: 'hello' }, { a: 2 }, { t: 'help', u: 'gone' })).toEqual([
      { op: 'put', ns: 'n', id: 'i', value: { a: 1 } },
      { op: 'text', ns: 'n', id: 'i', name: 't', splices: [[3, 1, 'lo']] },
      { op: 'text', ns: 'n', id: 'i', name: 'u', splices: [[0, 4, '']] },
    ])
    // Undelete: the entity is recreated from nothing.
    expect(forwardOps('n', 'i', {}, { t: 'x' }, undefined, {})).toEqual([
      { op: 'put', ns: 'n', id: 'i', value: {} },
      { op: 'text', ns: 'n', id: 'i', name: 't', splices: [[0, 0, 'x']] },
    ])
  })
})

describe('config and schedules', () => {
  it('reads the backup section and refuses bad settings', async () => {
    const dataDir = await tempDir('meshsync-cfg-')
    await writeConfig(dataDir, { backup: { target: '/mnt/backups', passphraseFile: 'pass.txt', schedules: [{ type: 'incremental', everyMs: 3_600_000, keep: { daily: 7 } }] } })
    const config = await loadConfig({ dataDir })
    expect(config.backup).toMatchObject({ target: '/mnt/backups', schedules: [{ type: 'incremental', everyMs: 3_600_000, keep: { daily: 7 } }] })
    expect(config.backup.passphraseFile).toMatch(/pass\.txt$/)
    await writeConfig(dataDir, { backup: { schedules: [{ type: 'full', method: 'files', everyMs: 86_400_000 }] } })
    expect((await loadConfig({ dataDir })).backup.schedules).toEqual([{ type: 'full', method: 'files', everyMs: 86_400_000 }])
    for (const bad of [
      { backup: { schedules: [{ type: 'hourly', everyMs: 5000 }] } },
      { backup: { schedules: [{ type: 'full', everyMs: 5 }] } },
      { backup: { colour: 1 } },
      { backup: { schedules: [{ type: 'incremental', method: 'files', everyMs: 5000 }] } },
      { backup: { schedules: [{ type: 'full', method: 'tar', everyMs: 5000 }] } },
    ]) {
      await writeConfig(dataDir, bad)
      await expect(loadConfig({ dataDir })).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    }
  })

  it('the service takes scheduled backups and prunes after each', async () => {
    const store = await smallStore()
    const target = await tempDir('meshsync-repo-')
    const service = new BackupService({ store, logger: quietLogger }, { target, schedules: [{ type: 'full', everyMs: 50, keep: { last: 2 } }] })
    service.start()
    try {
      await waitFor(async () => (await service.list()).sets.length === 2 && service.status().lastSuccess !== null, { timeout: 10_000 })
      await new Promise((r) => setTimeout(r, 300))
      // Each run prunes to the last two; one more may have landed since the last prune.
      expect((await service.list()).sets.length).toBeLessThanOrEqual(3)
    } finally {
      await service.stop()
    }
    expect(service.status()).toMatchObject({ running: false, lastFailure: null, target })
    await store.close()
  })
})
