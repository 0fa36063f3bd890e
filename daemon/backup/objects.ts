import { BackupError, corrupt } from './errors.ts'
import { sha256Hex, type ObjectRef } from './format.ts'
import { setKey, type BackupRepository } from './repository.ts'
import type { Sealer } from './seal.ts'

/** Reads one object of a set, checks its size and SHA-256, decrypts and decompresses it. */
export async function readObject(repo: BackupRepository, sealer: Sealer, set: string, ref: ObjectRef): Promise<Uint8Array> {
  const stored = await repo.get(setKey(set, ref.name))
  if (stored === undefined) throw corrupt(set, ref.name, 'missing')
  if (stored.length !== ref.size) throw corrupt(set, ref.name, `size ${stored.length}, expected ${ref.size}`)
  if (sha256Hex(stored) !== ref.sha256) throw corrupt(set, ref.name, 'SHA-256 mismatch')
  try {
    return await sealer.open(stored, `${set}/${ref.name}`)
  } catch (cause) {
    if (cause instanceof BackupError && cause.code === 'PASSPHRASE_REQUIRED') throw cause
    throw corrupt(set, ref.name, 'does not decrypt or decompress', cause)
  }
}
