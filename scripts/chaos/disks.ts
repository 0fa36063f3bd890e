import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, renameSync, rmdirSync, rmSync, statfsSync } from 'node:fs'
import { open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isProcessAlive } from '../../daemon/process-alive.ts'

/**
 * Small disks for a chaos run (netns mode, root): every node's data dir is its own tmpfs mount,
 * so one node's disk can fill up (a ballast file written until ENOSPC) and be freed again (the
 * ballast deleted) without touching the host's disks or the other nodes. Mounts of runs whose
 * process is gone are unmounted on setup, like the network namespaces.
 */

/** Data roots of chaos runs: `<tmpdir>/meshsync-chaos-<pid>-<seed>/node<i>` (scripts/chaos/run.ts). */
const MOUNT_RE = /\/meshsync-chaos-(\d+)-[^/]+\/node\d+$/

/** The ballast file's name inside a data dir. */
export const BALLAST = 'chaos-ballast'

/** Why tmpfs mounts cannot be made here, or undefined when they can (tries one). */
export function tmpfsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux'
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root'
  const dir = mkdtempSync(join(tmpdir(), 'meshsync-tmpfs-probe-'))
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { encoding: 'utf8' })
    if (r.error) return `\`mount\` is not available: ${r.error.message}`
    if (r.status !== 0) return `\`mount -t tmpfs\` does not work here: ${r.stderr.trim()}`
    unmount(dir)
    return undefined
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Mounts a tmpfs of `bytes` on `dir` (which must exist). */
export function mountTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / 4096) * 4096},mode=0700`, 'tmpfs', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Unmounts `dir`; lazily (detached now, gone when the last user exits) if it is busy. */
export function unmount(dir: string): void {
  if (spawnSync('umount', [dir]).status === 0) return
  spawnSync('umount', ['-l', dir])
}

/** Mount points (tmpfs) currently mounted under chaos data roots, with the pid of their run. */
function chaosMounts(): { dir: string; pid: number }[] {
  let text: string
  try {
    text = readFileSync('/proc/self/mounts', 'utf8')
  } catch {
    return []
  }
  const out: { dir: string; pid: number }[] = []
  for (const line of text.split('\n')) {
    const [, dir, type] = line.split(' ')
    if (type !== 'tmpfs' || dir === undefined) continue
    const m = MOUNT_RE.exec(dir)
    if (m) out.push({ dir, pid: Number(m[1]) })
  }
  return out
}

/** Unmounts the data-dir tmpfs mounts of chaos runs whose process is gone. */
export function removeDiskLeftovers(): string[] {
  const removed: string[] = []
  for (const { dir, pid } of chaosMounts()) {
    if (isProcessAlive(pid)) continue
    unmount(dir)
    removed.push(dir)
  }
  return removed
}

/**
 * Writes `file` until the file system holding it is full (ENOSPC); resolves with the bytes
 * written. Called again, it tops the disk up (after something there was deleted).
 */
export async function fillDisk(file: string): Promise<number> {
  const fh = await open(file, 'a')
  let written = 0
  try {
    for (const size of [1 << 20, 1 << 16, 1 << 12]) {
      const chunk = Buffer.alloc(size, 0x5a)
      for (;;) {
        try {
          const { bytesWritten } = await fh.write(chunk)
          written += bytesWritten
          if (bytesWritten < size) break
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break
          throw error
        }
      }
    }
  } finally {
    await fh.close()
  }
  return written
}

/** Bytes used and free on the file system holding `path` (undefined when unknown). */
export function diskUsage(path: string): { used: number; free: number } | undefined {
  try {
    const s = statfsSync(path)
    return { used: (s.blocks - s.bfree) * s.bsize, free: s.bavail * s.bsize }
  } catch {
    return undefined
  }
}

/** The tmpfs data disks of one run's nodes. */
export class ChaosDisks {
  /** Size of each node's disk, bytes. */
  readonly bytes: number
  readonly #dirs = new Map<number, string>()
  readonly #topUps = new Map<number, ReturnType<typeof setInterval>>()

  constructor(bytes: number) {
    this.bytes = bytes
  }

  /** Unmounts what crashed runs left behind. */
  setup(): string[] {
    return removeDiskLeftovers()
  }

  /** Gives node `i` a disk of its own mounted on `dir` (an existing, empty directory). */
  mount(i: number, dir: string): void {
    mountTmpfs(dir, this.bytes)
    this.#dirs.set(i, dir)
  }

  dir(i: number): string {
    const dir = this.#dirs.get(i)
    if (dir === undefined) throw new Error(`node ${i} has no chaos disk`)
    return dir
  }

  /**
   * Fills node `i`'s disk with a ballast file until ENOSPC, and keeps it full (tops it up every
   * `topUpMs`, since the daemon may delete files) until {@link free}. Resolves with the bytes
   * written at first.
   */
  async fill(i: number, topUpMs = 250): Promise<number> {
    const file = join(this.dir(i), BALLAST)
    const bytes = await fillDisk(file)
    if (!this.#topUps.has(i)) {
      let busy = false
      this.#topUps.set(
        i,
        setInterval(() => {
          if (busy) return
          busy = true
          void fillDisk(file)
            .catch(() => undefined)
            .finally(() => (busy = false))
        }, topUpMs),
      )
    }
    return bytes
  }

  /** Deletes node `i`'s ballast (stops topping it up). */
  async free(i: number): Promise<void> {
    clearInterval(this.#topUps.get(i))
    this.#topUps.delete(i)
    await rm(join(this.dir(i), BALLAST), { force: true })
  }

  /** Bytes used and free on node `i`'s disk. */
  usage(i: number): { used: number; free: number } | undefined {
    const dir = this.#dirs.get(i)
    return dir === undefined ? undefined : diskUsage(dir)
  }

  /**
   * Unmounts every disk (synchronous, so it also runs from an exit handler). With `keep`, each
   * disk's files (not the ballast) are first copied to the host disk, into the same directory.
   */
  teardown(keep = false): void {
    for (const timer of this.#topUps.values()) clearInterval(timer)
    this.#topUps.clear()
    for (const dir of this.#dirs.values()) {
      rmSync(join(dir, BALLAST), { force: true })
      if (keep) {
        const copy = `${dir}.kept`
        spawnSync('cp', ['-a', dir, copy])
        unmount(dir)
        try {
          rmdirSync(dir)
          renameSync(copy, dir)
        } catch {
          // the data stays in <dir>.kept
        }
      } else {
        unmount(dir)
      }
    }
    this.#dirs.clear()
  }
}
