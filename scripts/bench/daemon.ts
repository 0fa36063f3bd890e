import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { trackChild } from './children.ts'
import type { DaemonInfo as DaemonJson } from '../../daemon/daemon.ts'

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

const REPO_ROOT = resolve(import.meta.dirname, '..', '..')

/** A meshsync daemon started by the bench on a fresh data dir; {@link stop} ends it and removes the dir. */
export class BenchDaemon {
  readonly dataDir: string
  readonly info: DaemonJson
  readonly #child: ChildProcess
  readonly #output: string[]

  private constructor(dataDir: string, info: DaemonJson, child: ChildProcess, output: string[]) {
    this.dataDir = dataDir
    this.info = info
    this.#child = child
    this.#output = output
  }

  /** Unix socket of the API (no token needed). */
  get socket(): string {
    return this.info.api.socket
  }

  static async start(options: SpawnOptions): Promise<BenchDaemon> {
    const dataDir = options.dataDir ?? (await mkdtemp(join(options.baseDir, 'meshsync-bench-')))
    const removeDir = (): Promise<void> => (options.dataDir === undefined ? rm(dataDir, { recursive: true, force: true }) : Promise.resolve())
    // Loopback on a free port unless told otherwise: never the default port another daemon may hold.
    const listen = options.args?.includes('--listen') ? [] : ['--listen', '/ip4/127.0.0.1/tcp/0']
    const args = [...(options.nodeFlags ?? []), 'bin/meshsync.mjs', 'start', '--data-dir', dataDir, '--api-port', '0', '--no-mdns', '--log-level', 'warn', ...listen, ...(options.args ?? [])]
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    trackChild(child)
    const output: string[] = []
    const keep = (chunk: Buffer): void => {
      output.push(chunk.toString())
      if (output.length > 200) output.shift()
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    let exited: string | undefined
    child.once('exit', (code, signal) => (exited = `exited (code ${code}, signal ${signal})`))
    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000)
    for (;;) {
      if (exited !== undefined) {
        await removeDir()
        throw new Error(`daemon ${exited} before it was ready:\n${output.join('')}`)
      }
      const info = await readDaemonJson(dataDir)
      if (info) return new BenchDaemon(dataDir, info, child, output)
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        await removeDir()
        throw new Error(`daemon not ready after ${options.readyTimeoutMs ?? 30_000} ms:\n${output.join('')}`)
      }
      await sleep(50)
    }
  }

  /** Process id of the daemon. */
  get pid(): number {
    return this.#child.pid as number
  }

  /** SIGTERM (graceful: the daemon flushes and exits 0), SIGKILL after a timeout; then removes the data dir unless `keepDir`. */
  async stop(options: { keepDir?: boolean; timeoutMs?: number } = {}): Promise<number | null> {
    const child = this.#child
    let code: number | null = child.exitCode
    if (code === null && child.signalCode === null) {
      const exit = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000)
      ;[code] = await exit
      clearTimeout(timer)
    }
    if (!options.keepDir) await rm(this.dataDir, { recursive: true, force: true })
    return code
  }

  /** The daemon's recent stdout/stderr (for error reports). */
  get output(): string {
    return this.#output.join('')
  }
}

async function readDaemonJson(dataDir: string): Promise<DaemonJson | undefined> {
  let text: string
  try {
    text = await readFile(join(dataDir, 'daemon.json'), 'utf8')
  } catch {
    return undefined
  }
  try {
    return JSON.parse(text) as DaemonJson
  } catch {
    return undefined // being written
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
