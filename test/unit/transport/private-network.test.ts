import { createRequire } from 'node:module'
import * as prng from 'lib0/prng'
import { describe, expect, it } from 'vitest'
import { decodePreSharedKey, generateClusterKey, XSalsa20Stream } from '../../../transport/index.ts'

// The xsalsa20 package @libp2p/pnet uses: the reference this protector must match byte for byte.
const require = createRequire(createRequire(import.meta.url).resolve('@libp2p/pnet'))
const reference = require('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => { update(input: Uint8Array): Uint8Array }

describe('private network (pnet) cipher', () => {
  it('matches the xsalsa20 reference for any split of the stream (seeded)', () => {
    const gen = prng.create(7)
    for (let run = 0; run < 50; run++) {
      const key = prng.uint8Array(gen, 32)
      const nonce = prng.uint8Array(gen, 24)
      const ours = new XSalsa20Stream(key, nonce)
      const ref = reference(nonce, key)
      for (let piece = 0; piece < 20; piece++) {
        // Up to 9 KiB: pieces within one made keystream, across its end, and over two of them.
        const input = prng.uint8Array(gen, prng.uint32(gen, 0, piece % 5 === 4 ? 9000 : 300))
        // Bytes compared as plain Uint8Arrays (ours come in a Buffer, from Node's pool).
        expect(new Uint8Array(ours.update(input))).toEqual(ref.update(input))
      }
    }
  })

  it('survives what breaks the reference: many ciphers over a process life, and one huge buffer', () => {
    const key = new Uint8Array(32).fill(1)
    const nonce = new Uint8Array(24).fill(2)
    for (let i = 0; i < 20_000; i++) new XSalsa20Stream(key, nonce).update(new Uint8Array(16))
    expect(new XSalsa20Stream(key, nonce).update(new Uint8Array(70 * 1024 * 1024)).length).toBe(70 * 1024 * 1024)
  })

  it('reads the pnet key file format, and refuses anything else', () => {
    expect(decodePreSharedKey(generateClusterKey())).toHaveLength(32)
    expect(() => decodePreSharedKey(new TextEncoder().encode('/key/swarm/psk/1.0.0/\n/base16/\nzz'))).toThrow()
    expect(() => decodePreSharedKey(new Uint8Array([1, 2, 3]))).toThrow()
  })
})
