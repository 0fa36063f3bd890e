import { promisify } from 'node:util'
import { zstdCompress, zstdCompressSync } from 'node:zlib'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { frameContentSize, openSealer } from '../../../daemon/backup/seal.ts'
import { openRepository } from '../../../daemon/backup/target.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'

/** Sealed objects: zstd frames that state their size (so opening one allocates its output once), optionally encrypted. */

const tempDir = useTempDirs('all')
const SEED = 20261127
/** How objects were sealed before frames stated their size: streamed, no pledged size. */
const streamed = (bytes: Uint8Array): Promise<Buffer> => promisify(zstdCompress)(bytes, { chunkSize: 1024 * 1024 })

describe('sealed objects', () => {
  it('open what they seal, for any size, plain and encrypted; frames state the plaintext size', async () => {
    const plainRepo = openRepository(await tempDir('meshsync-repo-'))
    const secretRepo = openRepository(await tempDir('meshsync-repo-'))
    const { sealer: plain } = await openSealer(plainRepo, { create: true })
    const { sealer: secret } = await openSealer(secretRepo, { create: true, passphrase: 'p', kdf: { N: 1024, r: 8, p: 1 } })
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 * 1024 * 1024 }), fc.integer({ min: 0, max: 255 }), async (size, fill) => {
        // Bytes that compress somewhat: a repeated pattern with a counter through it.
        const bytes = Buffer.alloc(size, fill)
        for (let i = 0; i < size; i += 61) bytes[i] = i & 0xff
        for (const sealer of [plain, secret]) {
          const stored = await sealer.seal(bytes, 'set/c000000')
          expect(Buffer.from(await sealer.open(stored, 'set/c000000')).equals(bytes)).toBe(true)
        }
        const stored = await plain.seal(bytes, 'x')
        expect(frameContentSize(stored.subarray(5))).toBe(size)
      }),
      { seed: SEED, numRuns: 40 },
    )
  })

  it('reads the size of every frame header layout, and none from a frame without one or from garbage', async () => {
    // Single-segment frames of small inputs state 1- or 2-byte sizes; pledged larger ones 4 bytes.
    for (const size of [0, 1, 255, 256, 300, 65_791, 65_792, 200_000]) {
      const frame = zstdCompressSync(Buffer.alloc(size, 1), { pledgedSrcSize: size })
      expect(frameContentSize(frame)).toBe(size)
    }
    // Without a pledged size a streamed frame states none (as objects sealed before it was set).
    expect(frameContentSize(await streamed(Buffer.alloc(300_000, 1)))).toBeUndefined()
    expect(frameContentSize(new Uint8Array([1, 2, 3, 4, 5, 6, 7]))).toBeUndefined()
    expect(frameContentSize(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x80]))).toBeUndefined()
  })

  it('open objects sealed without a stated size, and objects larger than one output buffer', async () => {
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const { sealer } = await openSealer(repo, { create: true })
    const big = Buffer.alloc(5 * 1024 * 1024)
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i)
    const frame = await streamed(big)
    expect(frameContentSize(frame)).toBeUndefined()
    const unsized = Buffer.concat([Buffer.from([0x4d, 0x53, 0x42, 1, 0]), frame])
    expect(Buffer.from(await sealer.open(unsized, 'x')).equals(big)).toBe(true)
    expect(Buffer.from(await sealer.open(await sealer.seal(big, 'x'), 'x')).equals(big)).toBe(true)
  })
})
