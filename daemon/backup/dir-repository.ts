import { randomBytes } from 'node:crypto'
import { open, readdir, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { BackupError } from './errors.ts'
import { makeDirs } from '../make-dirs.ts'
import { MANIFEST, type BackupRepository, type SetWriter } from './repository.ts'

/**
 * A repository in a local directory (external drive, NAS mount). Every object is written to a
 * temp name, fsynced and renamed; a set is staged in `sets/.partial-<id>-<rand>/` (invisible) and
 * becomes visible by one rename of that directory after its manifest is written, so a crash at
 * any moment leaves either the whole set or nothing visible.
 */
export class DirRepository implements BackupRepository {
  readonly location: string
  readonly #root: string

  constructor(root: string) {
    this.#root = resolve(root)
    this.location = this.#root
  }

  #path(key: string): string {
    const path = resolve(this.#root, ...key.split('/'))
    if (path !== this.#root && !path.startsWith(this.#root + sep)) throw new BackupError('INVALID_TARGET', `object key ${key} leaves the repository`)
    return path
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.#path(key)))
    } catch (cause) {
      if (isMissing(cause)) return undefined
      throw unreachable(this.location, cause)
    }
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    try {
      await writeDurably(this.#path(key), bytes)
    } catch (cause) {
      throw unreachable(this.location, cause)
    }
  }

  async list(prefix: string): Promise<string[]> {
    const slash = prefix.lastIndexOf('/')
    const dirKey = slash < 0 ? '' : prefix.slice(0, slash)
    const out: string[] = []
    const walk = async (key: string): Promise<void> => {
      let entries
      try {
        entries = await readdir(key === '' ? this.#root : this.#path(key), { withFileTypes: true })
      } catch (cause) {
        if (isMissing(cause)) return
        throw unreachable(this.location, cause)
      }
      for (const entry of entries) {
        if (entry.name.startsWith('.')) continue // temp files and staged sets
        const child = key === '' ? entry.name : `${key}/${entry.name}`
        if (entry.isDirectory()) await walk(child)
        else if (child.startsWith(prefix)) out.push(child)
      }
    }
    await walk(dirKey)
    return out.sort()
  }

  async delete(key: string): Promise<void> {
    try {
      await rm(this.#path(key), { force: true })
    } catch (cause) {
      throw unreachable(this.location, cause)
    }
  }

  async listSets(): Promise<string[]> {
    let entries
    try {
      entries = await readdir(this.#path('sets'), { withFileTypes: true })
    } catch (cause) {
      if (isMissing(cause)) return []
      throw unreachable(this.location, cause)
    }
    const ids: string[] = []
    for (const entry of entries) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue
      if (await exists(join(this.#path('sets'), entry.name, MANIFEST))) ids.push(entry.name)
    }
    return ids.sort()
  }

  async beginSet(id: string): Promise<SetWriter> {
    const sets = this.#path('sets')
    const staging = join(sets, `.partial-${id}-${randomBytes(4).toString('hex')}`)
    const final = this.#path(`sets/${id}`)
    const location = this.location
    try {
      await makeDirs(staging)
    } catch (cause) {
      throw unreachable(location, cause)
    }
    return {
      async put(name, bytes) {
        try {
          // The staging directory is invisible until published: no temp name needed in it.
          await writeSynced(join(staging, name), bytes)
        } catch (cause) {
          throw unreachable(location, cause)
        }
      },
      async publish(manifest) {
        try {
          // Like the set's other files: the directory is invisible until the rename below, so the
          // manifest needs no temp name; one fsync of the directory then makes every entry in it
          // durable before the set becomes visible.
          await writeSynced(join(staging, MANIFEST), manifest)
          await fsyncDir(staging)
          await rename(staging, final)
          await fsyncDir(sets)
        } catch (cause) {
          throw unreachable(location, cause)
        }
      },
      async abort() {
        await rm(staging, { recursive: true, force: true }).catch(() => undefined)
      },
    }
  }

  async deleteSet(id: string): Promise<void> {
    const dir = this.#path(`sets/${id}`)
    const doomed = join(this.#path('sets'), `.deleting-${id}-${randomBytes(4).toString('hex')}`)
    try {
      // One rename hides the set at once; the files go after.
      await rename(dir, doomed)
      await fsyncDir(this.#path('sets'))
      await rm(doomed, { recursive: true, force: true })
    } catch (cause) {
      if (isMissing(cause)) return
      throw unreachable(this.location, cause)
    }
  }

  async removeDebris(): Promise<number> {
    let entries
    try {
      entries = await readdir(this.#path('sets'), { withFileTypes: true })
    } catch (cause) {
      if (isMissing(cause)) return 0
      throw unreachable(this.location, cause)
    }
    let removed = 0
    for (const entry of entries) {
      if (!entry.name.startsWith('.')) continue
      await rm(join(this.#path('sets'), entry.name), { recursive: true, force: true })
      removed++
    }
    return removed
  }

  async close(): Promise<void> {}
}

/** Writes a file through a temp name: write, fsync, rename, fsync the directory. */
async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path)
  await makeDirs(dir)
  const tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}`)
  await writeSynced(tmp, bytes)
  await rename(tmp, path)
  await fsyncDir(dir)
}

/** Writes a file and fsyncs it. */
async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'w', 0o600)
  try {
    await handle.writeFile(bytes)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    const handle = await open(path, 'r')
    await handle.close()
    return true
  } catch {
    return false
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ENOENT'
}

function unreachable(location: string, cause: unknown): BackupError {
  if (cause instanceof BackupError) return cause
  const why = cause instanceof Error ? cause.message : String(cause)
  return new BackupError('TARGET_UNREACHABLE', `backup repository ${location}: ${why}`, { cause })
}
