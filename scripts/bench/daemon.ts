import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { trackChild } from './children.ts'
import { spawnDaemon, type DaemonJson, type SpawnedDaemon } from '../lib/daemon-launcher.ts'

/** `<data-dir>/daemon.json` (what the daemon writes once it is ready). */
export type { DaemonJson }

/** Options of one daemon started for a benchmark. */
export interface SpawnOptions {
  /** Parent of the temporary data dir. */
  readonly baseDir: string
  /** Start on this existing data dir instead of a fresh one (it is kept when the start fails). */
  readonly dataDir?: string
  /** Extra Node flags (e.g. `--cpu-prof`). */
  readonly nodeFlags?: readonly string[]
  /** Extra `meshsync start` arguments (e.g. `--listen`, `--cluster-key`, `--bootstrap`). */
  readonly args?: readonly string[]
  readonly readyTimeoutMs?: number
}

/** Output kept per stream for error reports. */
const KEEP_OUTPUT = 64 * 1024

/** A meshsync daemon started by the bench on a fresh data dir; {@link stop} ends it and removes the dir. */
export class BenchDaemon {
  readonly dataDir: string
  readonly info: DaemonJson
  readonly #daemon: SpawnedDaemon

  private constructor(dataDir: string, info: DaemonJson, daemon: SpawnedDaemon) {
    this.dataDir = dataDir
    this.info = info
    this.#daemon = daemon
  }

  /** Unix socket of the API (no token needed). */
  get socket(): string {
    return this.info.api.socket
  }

  static async start(options: SpawnOptions): Promise<BenchDaemon> {
    const dataDir = options.dataDir ?? (await mkdtemp(join(options.baseDir, 'meshsync-bench-')))
    const removeDir = (): Promise<void> => (options.dataDir === undefined ? rm(dataDir, { recursive: true, force: true }) : Promise.resolve())
    // Loopback on a free port unless told otherwise: never the default port another daemon may hold.
    const listen = options.args?.includes('--listen') ? [] : ['/ip4/127.0.0.1/tcp/0']
    const daemon = await spawnDaemon({ dataDir, listen, args: options.args ?? [], nodeFlags: options.nodeFlags ?? [], keepOutput: KEEP_OUTPUT })
    trackChild(daemon.child)
    try {
      return new BenchDaemon(dataDir, await daemon.ready(options.readyTimeoutMs ?? 30_000, 50), daemon)
    } catch (error) {
      await daemon.exited
      await removeDir()
      throw error
    }
  }

  /** Process id of the daemon. */
  get pid(): number {
    return this.#daemon.pid
  }

  /** SIGTERM (graceful: the daemon flushes and exits 0), SIGKILL after a timeout; then removes the data dir unless `keepDir`. */
  async stop(options: { keepDir?: boolean; timeoutMs?: number } = {}): Promise<number | null> {
    const { code } = await this.#daemon.stop(options.timeoutMs ?? 30_000)
    if (!options.keepDir) await rm(this.dataDir, { recursive: true, force: true })
    return code
  }

  /** The daemon's recent stderr and stdout (for error reports). */
  get output(): string {
    return this.#daemon.stderr() + this.#daemon.stdout()
  }
}

/**
 * Starts a daemon on a fresh data dir, runs `fn` with it, stops it (a non-zero exit is an error)
 * and removes the dir. With `cpuProfDir`, the daemon runs under `--cpu-prof` and writes its
 * profile there on exit.
 */
export async function withDaemon<T>(baseDir: string, cpuProfDir: string | undefined, fn: (daemon: BenchDaemon) => Promise<T>): Promise<T> {
  const nodeFlags = cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfDir]
  const daemon = await BenchDaemon.start({ baseDir, nodeFlags })
  let result: T
  try {
    result = await fn(daemon)
  } catch (error) {
    await daemon.stop()
    throw error
  }
  const code = await daemon.stop()
  if (code !== 0) throw new Error(`daemon exited with code ${code} on SIGTERM:\n${daemon.output}`)
  return result
}
