import type { ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { Agent, request, type IncomingHttpHeaders } from 'node:http'
import { join } from 'node:path'
import { makeTempDir } from './temp-dir.ts'
import { SseParser } from '../../daemon/cli/client.ts'
import { launchDaemon, type DaemonJson, type ExitStatus } from '../../scripts/lib/daemon-launcher.ts'

/** The repository root and `bin/meshsync.mjs`, the CLI entry. */
export { meshsyncBin, repoRoot } from '../../scripts/lib/daemon-launcher.ts'

/** Contents of `<data-dir>/daemon.json` (what the daemon writes once it is ready), and how a child exited. */
export type { DaemonJson, ExitStatus }

/** An HTTP answer, body read in full. */
export interface ApiResponse<T = unknown> {
  readonly status: number
  readonly headers: Record<string, string>
  /** The body parsed as JSON; undefined when it is not JSON. */
  readonly json: T
  readonly text: string
}

/**
 * A request body: a string, Buffer or Uint8Array goes out byte for byte (content-type
 * `application/json` unless the headers say otherwise); anything else is sent as its JSON.
 */
export type RequestBody = string | Uint8Array | object | number | boolean | null

/** Request headers; a header set to `undefined` is left out (e.g. `{authorization: undefined}`: no token). */
export type RequestHeaders = Readonly<Record<string, string | undefined>>

/** Sends one request to the daemon's API. */
export type ApiCall = <T = unknown>(method: string, path: string, body?: RequestBody, headers?: RequestHeaders) => Promise<ApiResponse<T>>

/** A daemon running as a child process. */
export interface DaemonHandle {
  readonly child: ChildProcess
  readonly pid: number
  readonly dataDir: string
  readonly info: DaemonJson
  readonly token: string
  /** Request over TCP (`fetch`), with the bearer token unless `headers.authorization` is given. */
  readonly tcp: ApiCall
  /** Request over the Unix socket (`node:http` with `socketPath`), no token. */
  readonly sock: ApiCall
  /** Resolves once the process has exited. */
  readonly exited: Promise<ExitStatus>
  /** What the daemon wrote to stderr / stdout so far (the last MiB of each). */
  stderr(): string
  stdout(): string
  kill(signal?: NodeJS.Signals): void
  /** SIGTERM, then waits for the exit (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<ExitStatus>
}

/** What {@link startDaemon} takes. */
export interface StartDaemonOptions {
  /** Data dir to use (default: a fresh temp dir). */
  readonly dataDir?: string
  /** Extra `meshsync start` arguments. */
  readonly args?: readonly string[]
  /** libp2p listen multiaddrs (default: loopback, port 0, so parallel daemons never collide). */
  readonly listen?: readonly string[]
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>
  /** Longest wait for `daemon.json` (default 20 s). */
  readonly readyTimeoutMs?: number
  /** mDNS discovery on (default off: `--no-mdns`). */
  readonly mdns?: boolean
  /**
   * A command that runs the daemon, e.g. `['ip', 'netns', 'exec', 'ns1']`; it must exec the
   * daemon in place (same pid), as `ip netns exec` does. Default: none.
   */
  readonly wrapper?: readonly string[]
}

const running = new Set<DaemonHandle>()

/**
 * Spawns `meshsync start` on the Node running the tests, waits (polling, no fixed sleeps) until
 * `<data-dir>/daemon.json` names the child's pid, and returns a handle to talk to it.
 */
export async function startDaemon(options: StartDaemonOptions = {}): Promise<DaemonHandle> {
  const dataDir = options.dataDir ?? (await makeTempDir('meshsync-e2e-'))
  const { daemon, info } = await launchDaemon({
    dataDir,
    ...(options.listen && { listen: options.listen }),
    ...(options.mdns !== undefined && { mdns: options.mdns }),
    ...(options.args && { args: options.args }),
    ...(options.env && { env: options.env }),
    ...(options.wrapper && { wrapper: options.wrapper }),
    readyTimeoutMs: options.readyTimeoutMs ?? 20_000,
  })
  const { child, pid, exited } = daemon
  const token = (await readFile(join(dataDir, 'api-token'), 'utf8')).trim()
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })

  const tcp: ApiCall = async <T>(method: string, path: string, body?: RequestBody, headers: RequestHeaders = {}) => {
    const { payload, contentHeaders } = encodeBody(body, headers)
    const res = await fetch(`${info.api.url}${path}`, {
      method,
      headers: defined({ ...contentHeaders, ...(hasHeader(headers, 'authorization') ? {} : { authorization: `Bearer ${token}` }), ...headers }),
      ...(payload !== undefined && { body: payload }),
    })
    const text = await res.text()
    return { status: res.status, headers: Object.fromEntries(res.headers), json: parseJson(text) as T, text }
  }

  const sock: ApiCall = <T>(method: string, path: string, body?: RequestBody, headers: RequestHeaders = {}) => {
    const { payload, contentHeaders } = encodeBody(body, headers)
    return new Promise<ApiResponse<T>>((resolve, reject) => {
      const req = request(
        {
          socketPath: info.api.socket,
          agent,
          method,
          path,
          headers: defined({ ...contentHeaders, ...(payload !== undefined && { 'content-length': String(payload.length) }), ...headers }),
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('error', reject)
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            resolve({ status: res.statusCode ?? 0, headers: flattenHeaders(res.headers), json: parseJson(text) as T, text })
          })
        },
      )
      req.on('error', reject)
      req.end(payload)
    })
  }

  const handle: DaemonHandle = {
    child,
    pid,
    dataDir,
    info,
    token,
    tcp,
    sock,
    exited,
    stderr: daemon.stderr,
    stdout: daemon.stdout,
    kill: daemon.kill,
    stop: daemon.stop,
  }
  running.add(handle)
  void exited.then(() => {
    running.delete(handle)
    agent.destroy()
  })
  return handle
}

/** Stops every daemon this process started that still runs (for afterAll hooks). */
export async function stopAllDaemons(): Promise<void> {
  await Promise.all([...running].map((d) => d.stop()))
}

// A test run that dies never leaves daemons behind.
process.once('exit', () => {
  for (const d of running) d.child.kill('SIGKILL')
})

/** Writes `<data-dir>/config.json` (before the daemon starts). */
export async function writeConfig(dataDir: string, config: object): Promise<void> {
  await writeFile(join(dataDir, 'config.json'), JSON.stringify(config))
}

/** Reads the change feed as server-sent events until `close()`. */
export interface SseStream {
  /** Events received so far. */
  readonly events: { id?: string; event?: string; data: string }[]
  readonly status: number
  close(): void
}

/**
 * Opens `path` with `Accept: text/event-stream` over the daemon's Unix socket (or TCP with the
 * token) and collects the events; resolves once the response headers arrived.
 */
export function openSse(daemon: DaemonHandle, path: string, via: 'sock' | 'tcp' = 'sock', headers: Record<string, string> = {}): Promise<SseStream> {
  const url = new URL(daemon.info.api.url)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...(via === 'sock' ? { socketPath: daemon.info.api.socket } : { host: url.hostname, port: url.port }),
        method: 'GET',
        path,
        headers: { accept: 'text/event-stream', ...(via === 'tcp' && { authorization: `Bearer ${daemon.token}` }), ...headers },
      },
      (res) => {
        const events: SseStream['events'] = []
        const parser = new SseParser((event) => events.push(event))
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => parser.push(chunk))
        res.on('error', () => undefined)
        resolve({ events, status: res.statusCode ?? 0, close: () => req.destroy() })
      },
    )
    req.on('error', reject)
    req.end()
  })
}

function encodeBody(body: RequestBody | undefined, headers: RequestHeaders): { payload?: Buffer; contentHeaders: Record<string, string> } {
  if (body === undefined) return { contentHeaders: {} }
  const payload = typeof body === 'string' ? Buffer.from(body) : body instanceof Uint8Array ? Buffer.from(body) : Buffer.from(JSON.stringify(body))
  return { payload, contentHeaders: hasHeader(headers, 'content-type') ? {} : { 'content-type': 'application/json' } }
}

function hasHeader(headers: RequestHeaders, name: string): boolean {
  return Object.keys(headers).some((k) => k.toLowerCase() === name)
}

function defined(headers: RequestHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter((e): e is [string, string] => e[1] !== undefined))
}

function parseJson(text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v
  return out
}
