import { execFileSync } from 'node:child_process'
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os'
import { join, resolve } from 'node:path'

/** What the numbers were measured on. */
export interface BenchEnvironment {
  readonly node: string
  readonly v8: string
  readonly platform: string
  readonly arch: string
  readonly osRelease: string
  readonly cpuModel: string
  readonly cores: number
  readonly availableParallelism: number
  readonly totalMemMiB: number
  /** 1/5/15-minute load averages when the bench started: other work on the machine skews the figures. */
  readonly loadAverage: readonly number[]
  readonly uvThreadpoolSize: string
  /** Filesystem of the directory the databases live in (fsync cost depends on it). */
  readonly benchDir: { readonly path: string; readonly fsType: string; readonly fdatasyncMedianMs: number | null }
  readonly classicLevel: string
  /** Commit measured, and the tracked files changed on top of it (the code measured is commit + those). */
  readonly git: { readonly commit: string; readonly dirty: readonly string[] } | null
}

const REPO_ROOT = resolve(import.meta.dirname, '..', '..')

/** statfs magic numbers of common filesystems. */
const FS_TYPES: Record<number, string> = {
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x01021994: 'tmpfs',
  0x794c7630: 'overlayfs',
  0x2fc12fc1: 'zfs',
  0x6969: 'nfs',
  0x65735546: 'fuse',
  0xf15f: 'ecryptfs',
}

export function collectEnvironment(benchDir: string): BenchEnvironment {
  const cpuList = cpus()
  let fsType = 'unknown'
  try {
    const type = statfsSync(benchDir).type
    fsType = FS_TYPES[type] ?? `0x${type.toString(16)}`
  } catch {
    // statfs not supported here
  }
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: process.platform,
    arch: process.arch,
    osRelease: release(),
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    availableParallelism: availableParallelism(),
    totalMemMiB: Math.round(totalmem() / 2 ** 20),
    loadAverage: loadavg().map((n) => Math.round(n * 100) / 100),
    uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
    benchDir: { path: benchDir, fsType, fdatasyncMedianMs: fdatasyncCost(benchDir) },
    classicLevel: packageVersion('classic-level'),
    git: gitState(),
  }
}

/** Median ms of a 100-byte append + fdatasync in `dir`: what one durable commit costs at least. */
function fdatasyncCost(dir: string, rounds = 200): number | null {
  let tmp: string | undefined
  try {
    tmp = mkdtempSync(join(dir, 'fsync-probe-'))
    const fd = openSync(join(tmp, 'probe'), 'a')
    const times: number[] = []
    const chunk = Buffer.alloc(100, 'x')
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now()
      writeSync(fd, chunk)
      fdatasyncSync(fd)
      times.push(performance.now() - t0)
    }
    closeSync(fd)
    times.sort((a, b) => a - b)
    return Math.round((times[rounds >> 1] as number) * 1000) / 1000
  } catch {
    return null
  } finally {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true })
  }
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function gitState(): { commit: string; dirty: string[] } | null {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    return { commit, dirty: status.split('\n').filter((l) => l.trim().length > 0).map((l) => l.slice(3)) }
  } catch {
    return null
  }
}
