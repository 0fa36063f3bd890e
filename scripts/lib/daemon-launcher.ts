import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { DaemonInfo } from '../../daemon/daemon.ts'

/**
 * Starts `meshsync start` as a child process and waits until it is ready: the one launcher of
 * the test helpers (test/helpers/daemon-process.ts), the benchmarks (scripts/bench/daemon.ts) and
 * the chaos harness (scripts/chaos/cluster.ts). A daemon is ready once `<data-dir>/daemon.json`
 * names its pid (the daemon writes it once it serves; a file left by an earlier daemon on the
 * same data dir names another pid).
 */

/** The repository root (where `bin/meshsync.mjs` lives). */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url))

/** `bin/meshsync.mjs`, the CLI entry. */
export const meshsyncBin = join(repoRoot, 'bin', 'meshsync.mjs')

/** Contents of `<data-dir>/daemon.json`. */
export type DaemonJson = DaemonInfo

/** How a child process ended. */
export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface LaunchOptions {
  readonly dataDir: string
  /** libp2p listen multiaddrs (default: loopback, port 0, so parallel daemons never collide); empty: no `--listen`. */
  readonly listen?: readonly string[]
  /** mDNS discovery on (default off: `--no-mdns`). */
  readonly mdns?: boolean
  /** `--log-level` (default `warn`). */
  readonly logLevel?: string
  /** Extra `meshsync start` arguments, after the ones above. */
  readonly args?: readonly string[]
  /** Node flags before the entry (e.g. `--cpu-prof`). */
  readonly nodeFlags?: readonly string[]
  /**
   * A command that runs the daemon, e.g. `['ip', 'netns', 'exec', 'ns1']`; it must exec the
   * daemon in place (same pid), as `ip netns exec` does. Default: none.
   */
  readonly wrapper?: readonly string[]
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>
  /** Most characters of stdout and of stderr kept (the last ones; default 1 MiB each). */
  readonly keepOutput?: number
}

/** A daemon child process, started and maybe not yet ready. */
export interface SpawnedDaemon {
  readonly child: ChildProcess
  readonly pid: number
  readonly dataDir: string
  /** Resolves once the process has exited. */
  readonly exited: Promise<ExitStatus>
  /** How it exited, or undefined while it runs. */
  exitStatus(): ExitStatus | undefined
  /** What it wrote to stderr / stdout so far (the last `keepOutput` characters). */
  stderr(): string
  stdout(): string
  /**
   * Waits (polling every `intervalMs`, default 20) until daemon.json names this process;
   * SIGKILLs it and throws with its output when it exits first or after `timeoutMs`.
   */
  ready(timeoutMs: number, intervalMs?: number): Promise<DaemonJson>
  /** Sends `signal` unless the process has exited. */
  kill(signal?: NodeJS.Signals): void
  /** SIGTERM (SIGKILL after `timeoutMs`, default 15 s), then waits for the exit. */
  stop(timeoutMs?: number): Promise<ExitStatus>
}

/** The `meshsync start` command line of `options` (wrapper first, then Node and its flags). */
export function daemonCommand(options: LaunchOptions): { command: string; args: string[] } {
  const listen = options.listen ?? ['/ip4/127.0.0.1/tcp/0']
  const start = [
    meshsyncBin,
    'start',
    '--data-dir',
    options.dataDir,
    '--api-port',
    '0',
    ...(options.mdns ? [] : ['--no-mdns']),
    '--log-level',
    options.logLevel ?? 'warn',
    ...(listen.length > 0 ? ['--listen', ...listen] : []),
    ...(options.args ?? []),
  ]
  const [command, ...pre] = [...(options.wrapper ?? []), process.execPath]
  return { command: command as string, args: [...pre, ...(options.nodeFlags ?? []), ...start] }
}

/** Spawns the daemon (it is not ready yet: see {@link SpawnedDaemon.ready}). */
export async function spawnDaemon(options: LaunchOptions): Promise<SpawnedDaemon> {
  const { command, args } = daemonCommand(options)
  const child = spawn(command, args, { cwd: repoRoot, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const keep = options.keepOutput ?? 1024 * 1024
  let stderr = ''
  let stdout = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-keep)))
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout = (stdout + chunk).slice(-keep)))
  let exitStatus: ExitStatus | undefined
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      exitStatus = { code, signal }
      resolve(exitStatus)
    })
  })
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject))
  spawnError.catch(() => undefined)
  if (child.pid === undefined) await spawnError
  const pid = child.pid as number
  const kill = (signal: NodeJS.Signals = 'SIGTERM'): void => {
    if (!exitStatus) child.kill(signal)
  }
  return {
    child,
    pid,
    dataDir: options.dataDir,
    exited,
    exitStatus: () => exitStatus,
    stderr: () => stderr,
    stdout: () => stdout,
    kill,
    ready: async (timeoutMs, intervalMs = 20) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        if (exitStatus) throw new Error(`daemon exited before it was ready (${describeExit(exitStatus)}); output:\n${stderr}${stdout}`)
        const info = await readDaemonJson(options.dataDir)
        if (info?.pid === pid) return info
        if (Date.now() > deadline) {
          kill('SIGKILL')
          throw new Error(`daemon.json of pid ${pid} in ${options.dataDir} not written after ${timeoutMs} ms; output:\n${stderr}${stdout}`)
        }
        await sleep(intervalMs)
      }
    },
    stop: async (timeoutMs = 15_000) => {
      kill('SIGTERM')
      const timer = setTimeout(() => kill('SIGKILL'), timeoutMs)
      try {
        return await exited
      } finally {
        clearTimeout(timer)
      }
    },
  }
}

/** {@link spawnDaemon}, then waits until it is ready (default: at most 20 s). */
export async function launchDaemon(options: LaunchOptions & { readonly readyTimeoutMs?: number }): Promise<{ daemon: SpawnedDaemon; info: DaemonJson }> {
  const daemon = await spawnDaemon(options)
  return { daemon, info: await daemon.ready(options.readyTimeoutMs ?? 20_000) }
}

/** `<data-dir>/daemon.json`, or undefined while it is missing or half written. */
export async function readDaemonJson(dataDir: string): Promise<DaemonJson | undefined> {
  try {
    return JSON.parse(await readFile(join(dataDir, 'daemon.json'), 'utf8')) as DaemonJson
  } catch {
    return undefined
  }
}

export function describeExit(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`
}
