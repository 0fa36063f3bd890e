import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'
import { promisify } from 'node:util'
import { constants, zstdCompress, zstdDecompress } from 'node:zlib'
import { BackupError } from './errors.ts'
import type { BackupRepository } from './repository.ts'

const scrypt = promisify(scryptCb) as (password: string, salt: Uint8Array, keylen: number, options: ScryptOptions) => Promise<Buffer>
const compress = promisify(zstdCompress)
const decompress = promisify(zstdDecompress)

/** Format of the repository (config.json) this code writes and reads. */
export const REPOSITORY_FORMAT = 1

/** `config.json` of a repository. */
export interface RepositoryConfig {
  readonly format: number
  /** Random id of the repository. */
  readonly id: string
  readonly created: string
  /** Absent: chunks are compressed, not encrypted. */
  readonly encryption?: {
    readonly cipher: 'aes-256-gcm'
    readonly kdf: 'scrypt'
    /** base64 */
    readonly salt: string
    readonly N: number
    readonly r: number
    readonly p: number
    /** base64 of a known value sealed with the key: a wrong passphrase fails to open it. */
    readonly check: string
  }
}

/** scrypt cost (tests lower N to stay fast). */
export interface KdfParams {
  readonly N: number
  readonly r: number
  readonly p: number
}

export const DEFAULT_KDF: KdfParams = { N: 2 ** 15, r: 8, p: 1 }

/** How the objects of a repository are sealed: zstd, then AES-256-GCM when a key is set. */
export interface Sealer {
  readonly encrypted: boolean
  seal(plain: Uint8Array, aad: string): Promise<Uint8Array>
  /** Throws (any error) when the bytes do not authenticate, decompress, or carry a bad header. */
  open(stored: Uint8Array, aad: string): Promise<Uint8Array>
}

const MAGIC = [0x4d, 0x53, 0x42] // "MSB"
const OBJECT_VERSION = 1
const FLAG_ENCRYPTED = 1
const NONCE = 12
const TAG = 16
const CHECK_AAD = 'meshsync-backup-key-check'
/** Output buffer of zstd calls: node's 16 KiB default takes one thread-pool round trip per 16 KiB. */
const ZSTD_CHUNK = 1024 * 1024
/**
 * Largest output a decompression allocates in one buffer of the size its frame header states
 * (no copy to join pieces); above it, or with no size stated, it collects pieces of ZSTD_CHUNK.
 */
const MAX_SIZED_OUTPUT = 64 * 1024 * 1024
const CHECK_PLAIN = new TextEncoder().encode('meshsync backup repository key v1')

/** The content size a zstd frame's header states (RFC 8878 §3.1.1.1), or undefined. */
export function frameContentSize(frame: Uint8Array): number | undefined {
  if (frame.length < 6 || frame[0] !== 0x28 || frame[1] !== 0xb5 || frame[2] !== 0x2f || frame[3] !== 0xfd) return undefined
  const descriptor = frame[4] as number
  const fcsFlag = descriptor >> 6
  const singleSegment = (descriptor >> 5) & 1
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag] as number
  if (fcsBytes === 0) return undefined
  const at = 5 + (singleSegment ? 0 : 1) + ([0, 1, 2, 4][descriptor & 3] as number)
  if (frame.length < at + fcsBytes) return undefined
  const view = new DataView(frame.buffer, frame.byteOffset + at, fcsBytes)
  if (fcsBytes === 1) return view.getUint8(0)
  if (fcsBytes === 2) return view.getUint16(0, true) + 256
  if (fcsBytes === 4) return view.getUint32(0, true)
  const size = view.getBigUint64(0, true)
  return size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : undefined
}

function makeSealer(key: Buffer | undefined): Sealer {
  return {
    encrypted: key !== undefined,
    async seal(plain, aad) {
      // The pledged size goes into the frame header, so that opening it can size its output.
      const packed: Uint8Array = await compress(plain, { chunkSize: ZSTD_CHUNK, pledgedSrcSize: plain.length, params: { [constants.ZSTD_c_compressionLevel]: 3 } })
      const header = Uint8Array.from([...MAGIC, OBJECT_VERSION, key ? FLAG_ENCRYPTED : 0])
      if (!key) return concat([header, packed])
      const nonce = randomBytes(NONCE)
      const cipher = createCipheriv('aes-256-gcm', key, nonce)
      cipher.setAAD(concat([header, new TextEncoder().encode(aad)]))
      const body = concat([cipher.update(packed), cipher.final()])
      return concat([header, nonce, body, cipher.getAuthTag()])
    },
    async open(stored, aad) {
      if (stored.length < 5 || stored[0] !== MAGIC[0] || stored[1] !== MAGIC[1] || stored[2] !== MAGIC[2]) throw new Error('bad object header')
      if (stored[3] !== OBJECT_VERSION) throw new Error(`object format ${stored[3]} is not supported`)
      const flags = stored[4] as number
      const header = stored.subarray(0, 5)
      let packed: Uint8Array
      if (flags & FLAG_ENCRYPTED) {
        if (!key) throw new BackupError('PASSPHRASE_REQUIRED', 'the object is encrypted and no passphrase was given')
        if (stored.length < 5 + NONCE + TAG) throw new Error('truncated encrypted object')
        const nonce = stored.subarray(5, 5 + NONCE)
        const tag = stored.subarray(stored.length - TAG)
        const decipher = createDecipheriv('aes-256-gcm', key, nonce)
        decipher.setAAD(concat([header, new TextEncoder().encode(aad)]))
        decipher.setAuthTag(tag)
        packed = concat([decipher.update(stored.subarray(5 + NONCE, stored.length - TAG)), decipher.final()])
      } else {
        if (key) throw new Error('object is not encrypted in an encrypted repository')
        packed = stored.subarray(5)
      }
      const size = frameContentSize(packed)
      return await decompress(packed, { chunkSize: size !== undefined && size <= MAX_SIZED_OUTPUT ? Math.max(size, 1024) : ZSTD_CHUNK })
    },
  }
}

/**
 * Reads the repository's config and makes its sealer, creating the config when the repository is
 * new (encrypted when a passphrase is given). Throws WRONG_PASSPHRASE, PASSPHRASE_REQUIRED,
 * REPOSITORY_NOT_ENCRYPTED or UNSUPPORTED_FORMAT.
 */
export async function openSealer(
  repo: BackupRepository,
  options: { passphrase?: string | undefined; create?: boolean; kdf?: KdfParams; now?: () => number },
): Promise<{ sealer: Sealer; config: RepositoryConfig }> {
  const bytes = await repo.get('config.json')
  let config: RepositoryConfig
  if (bytes === undefined) {
    if (!options.create) throw new BackupError('BACKUP_NOT_FOUND', `${repo.location} is not a backup repository (no config.json)`)
    config = await newConfig(options.passphrase, options.kdf ?? DEFAULT_KDF, options.now ?? Date.now)
    await repo.put('config.json', new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`))
  } else {
    try {
      config = JSON.parse(new TextDecoder().decode(bytes)) as RepositoryConfig
    } catch (cause) {
      throw new BackupError('BACKUP_CORRUPT', `${repo.location}: config.json is not JSON`, { cause, object: 'config.json' })
    }
    if (typeof config.format !== 'number' || config.format > REPOSITORY_FORMAT) {
      throw new BackupError('UNSUPPORTED_FORMAT', `${repo.location}: repository format ${String(config.format)} is newer than this meshsync reads (${REPOSITORY_FORMAT})`)
    }
  }
  const enc = config.encryption
  if (!enc) {
    if (options.passphrase !== undefined) throw new BackupError('REPOSITORY_NOT_ENCRYPTED', `${repo.location} is not encrypted; no passphrase is needed`)
    return { sealer: makeSealer(undefined), config }
  }
  if (options.passphrase === undefined) throw new BackupError('PASSPHRASE_REQUIRED', `${repo.location} is encrypted: give its passphrase`)
  const key = await deriveKey(options.passphrase, Buffer.from(enc.salt, 'base64'), enc)
  const sealer = makeSealer(key)
  let plain: Uint8Array
  try {
    plain = await sealer.open(Buffer.from(enc.check, 'base64'), CHECK_AAD)
  } catch (cause) {
    throw new BackupError('WRONG_PASSPHRASE', `wrong passphrase for ${repo.location}`, { cause })
  }
  if (plain.length !== CHECK_PLAIN.length || !timingSafeEqual(plain, CHECK_PLAIN)) throw new BackupError('WRONG_PASSPHRASE', `wrong passphrase for ${repo.location}`)
  return { sealer, config }
}

async function newConfig(passphrase: string | undefined, kdf: KdfParams, now: () => number): Promise<RepositoryConfig> {
  const base = { format: REPOSITORY_FORMAT, id: randomBytes(16).toString('hex'), created: new Date(now()).toISOString() }
  if (passphrase === undefined) return base
  if (passphrase.length === 0) throw new BackupError('PASSPHRASE_REQUIRED', 'the passphrase is empty')
  const salt = randomBytes(32)
  const key = await deriveKey(passphrase, salt, kdf)
  const check = await makeSealer(key).seal(CHECK_PLAIN, CHECK_AAD)
  return {
    ...base,
    encryption: { cipher: 'aes-256-gcm', kdf: 'scrypt', salt: salt.toString('base64'), N: kdf.N, r: kdf.r, p: kdf.p, check: Buffer.from(check).toString('base64') },
  }
}

async function deriveKey(passphrase: string, salt: Uint8Array, kdf: KdfParams): Promise<Buffer> {
  if (!Number.isSafeInteger(kdf.N) || kdf.N < 2 || kdf.N > 2 ** 22 || kdf.r < 1 || kdf.r > 32 || kdf.p < 1 || kdf.p > 16) {
    throw new BackupError('UNSUPPORTED_FORMAT', 'scrypt parameters out of range')
  }
  return scrypt(passphrase.normalize('NFC'), salt, 32, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + 64 * 1024 * 1024 })
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(parts)
}
