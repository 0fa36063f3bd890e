import { existsSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LevelKvStore } from '../../../daemon/storage/index.ts'
import type { KvReader } from '../../../daemon/storage/kv-store.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'

/**
 * `LevelKvStore.checkpoint`: the database's files as of one moment on the store's write order,
 * with a snapshot of that moment, while writes and reads issued meanwhile wait and then go on.
 */

const tempDir = useTempDirs('all')
const enc = new TextEncoder()
const put = (key: string, value = key): { type: 'put'; key: string; value: Uint8Array } => ({ type: 'put', key, value: enc.encode(value) })
const text = (v: Uint8Array | undefined): string | undefined => (v ? new TextDecoder().decode(v) : undefined)

async function keysOf(reader: KvReader): Promise<string[]> {
  const keys: string[] = []
  for await (const [key] of reader.iterate()) keys.push(key)
  return keys
}

describe('LevelKvStore.checkpoint', () => {
  it('holds every write made before it; its snapshot is the same moment; reads wait for the reopen', async () => {
    const kv = new LevelKvStore(join(await tempDir('meshsync-kv-'), 'db'), { writeBufferSize: 64 * 1024 })
    await kv.open()
    // Enough for table files and a log: 3,000 entries of 100 bytes with a 64 KiB write buffer.
    for (let i = 0; i < 3000; i += 500) await kv.batch(Array.from({ length: 500 }, (_, k) => put(`k${String(i + k).padStart(5, '0')}`, 'v'.repeat(100))), { sync: false })
    const before = kv.batch([put('before')], { sync: true })
    const taking = kv.checkpoint()
    const during = kv.batch([put('during')], { sync: true })
    await before
    // With no reader to wait for, the copy follows `during` on the write order; the database
    // cannot have been closed and reopened within this turn of the event loop. A read issued now
    // waits for the reopen, and so does a snapshot asked for through whenOpen.
    await new Promise((r) => setImmediate(r))
    const read = kv.get('k00001')
    const snapshotLater = kv.whenOpen().then(() => kv.snapshot())
    const [checkpoint] = await Promise.all([taking, during])
    expect(text(await read)).toBe('v'.repeat(100))
    const later = await snapshotLater
    expect(await keysOf(later)).toContain('before')
    await later.close()
    await kv.batch([put('after')], { sync: true })

    expect(checkpoint.files.some((f) => f.endsWith('.ldb'))).toBe(true)
    expect(checkpoint.files.some((f) => f.endsWith('.log'))).toBe(true)
    expect(checkpoint.files).toContain('CURRENT')
    expect(checkpoint.files).not.toContain('LOCK')
    expect((await readdir(checkpoint.dir)).sort()).toEqual([...checkpoint.files].sort())

    const snapshotKeys = await keysOf(checkpoint.snapshot)
    expect(snapshotKeys).toContain('before')
    expect(snapshotKeys).not.toContain('after')
    await checkpoint.snapshot.close()

    // The copy opens as a database holding exactly what the snapshot holds.
    const copy = new LevelKvStore(checkpoint.dir)
    await copy.open()
    expect(await keysOf(copy)).toEqual(snapshotKeys)
    await copy.close()

    // The live store went on: it holds everything, and writes again.
    expect(text(await kv.get('after'))).toBe('after')
    await kv.batch([put('later')], { sync: true })
    expect(text(await kv.get('later'))).toBe('later')
    await checkpoint.remove()
    expect((await readdir(join(checkpoint.dir, '..'))).filter((n) => n.includes('.checkpoint-'))).toEqual([])
    await kv.close()
  })

  it('closes the snapshots still open when its wait for them runs out', async () => {
    const kv = new LevelKvStore(join(await tempDir('meshsync-kv-'), 'db'), { checkpointDrainMs: 50 })
    await kv.open()
    await kv.batch([put('a')], { sync: true })
    const open = kv.snapshot()
    const checkpoint = await kv.checkpoint()
    await expect(keysOf(open)).rejects.toMatchObject({ code: 'STORAGE_CLOSED' })
    await open.close().catch(() => undefined)
    expect(await keysOf(checkpoint.snapshot)).toEqual(['a'])
    await checkpoint.snapshot.close()
    await checkpoint.remove()
    await kv.close()
  })

  it('waits for the snapshots and iterators open when it is asked for to end; new ones wait for it', async () => {
    const kv = new LevelKvStore(join(await tempDir('meshsync-kv-'), 'db'), { checkpointDrainMs: 10_000 })
    await kv.open()
    await kv.batch(['a', 'b', 'c'].map((k) => put(k)), { sync: true })
    const snapshot = kv.snapshot()
    const iterator = kv.iterate()[Symbol.asyncIterator]()
    expect((await iterator.next()).value?.[0]).toBe('a')
    let taken = false
    const taking = kv.checkpoint().then((c) => {
      taken = true
      return c
    })
    // A point read and a write go on meanwhile; a new snapshot waits.
    expect(text(await kv.get('b'))).toBe('b')
    await kv.batch([put('d')], { sync: true })
    const waiting = kv.whenOpen().then(() => kv.snapshot())
    await new Promise((r) => setTimeout(r, 50))
    expect(taken).toBe(false)
    // The open readers finish their work and close.
    expect((await iterator.next()).value?.[0]).toBe('b')
    await iterator.return?.(undefined)
    expect(await keysOf(snapshot)).toEqual(['a', 'b', 'c'])
    await snapshot.close()
    const checkpoint = await taking
    await checkpoint.snapshot.close()
    const later = await waiting
    expect(await keysOf(later)).toEqual(['a', 'b', 'c', 'd'])
    await later.close()
    await checkpoint.remove()
    await kv.close()
  })

  it('a second open of a database in use fails and leaves its checkpoint alone', async () => {
    const location = join(await tempDir('meshsync-kv-'), 'db')
    const kv = new LevelKvStore(location)
    await kv.open()
    await kv.batch([put('a')], { sync: true })
    const checkpoint = await kv.checkpoint()
    const other = new LevelKvStore(location)
    await expect(other.open()).rejects.toMatchObject({ code: 'STORAGE_FAILURE' })
    expect(existsSync(checkpoint.dir)).toBe(true)
    await checkpoint.snapshot.close()
    await checkpoint.remove()
    await kv.close()
  })

  it('two checkpoints in a row are two directories, each whole', async () => {
    const kv = new LevelKvStore(join(await tempDir('meshsync-kv-'), 'db'))
    await kv.open()
    await kv.batch([put('a')], { sync: true })
    const [one, two] = await Promise.all([kv.checkpoint(), kv.checkpoint()])
    expect(one.dir).not.toBe(two.dir)
    for (const c of [one, two]) {
      await c.snapshot.close()
      const copy = new LevelKvStore(c.dir)
      await copy.open()
      expect(await keysOf(copy)).toEqual(['a'])
      await copy.close()
      await c.remove()
    }
    await kv.close()
  })
})
