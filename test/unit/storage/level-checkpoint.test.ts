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
  it('holds every write queued before it and none queued after; its snapshot is the same moment', async () => {
    const kv = new LevelKvStore(join(await tempDir('meshsync-kv-'), 'db'), { writeBufferSize: 64 * 1024 })
    await kv.open()
    // Enough for table files and a log: 3,000 entries of 100 bytes with a 64 KiB write buffer.
    for (let i = 0; i < 3000; i += 500) await kv.batch(Array.from({ length: 500 }, (_, k) => put(`k${String(i + k).padStart(5, '0')}`, 'v'.repeat(100))), { sync: false })
    const before = kv.batch([put('before')], { sync: true })
    const taking = kv.checkpoint()
    const after = kv.batch([put('after')], { sync: true })
    // A read issued while the database is closed for the copy waits for the reopen.
    const read = kv.get('k00001')
    const [checkpoint] = await Promise.all([taking, before, after])
    expect(text(await read)).toBe('v'.repeat(100))

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

    // The live store went on: it holds both, and writes again.
    expect(text(await kv.get('after'))).toBe('after')
    await kv.batch([put('later')], { sync: true })
    expect(text(await kv.get('later'))).toBe('later')
    await checkpoint.remove()
    expect((await readdir(join(checkpoint.dir, '..'))).filter((n) => n.includes('.checkpoint-'))).toEqual([])
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
