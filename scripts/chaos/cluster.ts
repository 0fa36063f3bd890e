import type { ChildProcess } from 'node:child_process'
import { createWriteStream, readdirSync, readFileSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { initDataDir } from '../../daemon/data-dir.ts'
import { spawnDaemon } from '../lib/daemon-launcher.ts'
import { SocketApi } from './api.ts'
import type { ChaosDisks } from './disks.ts'
import type { ChaosNetwork } from './netns.ts'

/** The repository root. */
export { repoRoot } from '../lib/daemon-launcher.ts'

export interface NodeSpec {
  readonly index: number
  readonly dataDir: string
  readonly listen: string
  /** Multiaddr with /p2p/<peerId>, what the others bootstrap from. */
  readonly addr: string
  readonly peerId: string
  readonly nodeId: string
  /** Command prefix running the daemon in its namespace (netns mode). */
  readonly wrapper: readonly string[]
}

/** Resource use of a process, from /proc. */
export interface ProcSample {
  readonly rssBytes: number
  readonly fds: number
}

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rss = /VmRSS:\s+(\d+) kB/.exec(status)
    return { rssBytes: rss ? Number(rss[1]) * 1024 : 0, fds: readdirSync(`/proc/${pid}/fd`).length }
  } catch {
    return undefined
  }
}

/** One daemon of the cluster: started, killed, stopped and restarted on the same data dir. */
export class ChaosNode {
  readonly spec: NodeSpec
  readonly #peers: () => string[]
  readonly #env: Record<string, string>
  readonly #startTimeoutMs: number
  child: ChildProcess | undefined
  api: SocketApi
  #exited: Promise<void> = Promise.resolve()
  #stderr: () => string = () => ''
  starts = 0
  crashes: string[] = []
  /** "Yjs update left pending" log lines (must stay 0), and error-level log lines. */
  pendingYjs = 0
  errorLines = 0
  /** True from the moment `start` saw daemon.json until the process is killed or stopped. */
  ready = false
  /** True while SIGSTOPped. */
  paused = false
  #expectExit = false

  constructor(spec: NodeSpec, peers: () => string[], env: Record<string, string>, startTimeoutMs = 30_000) {
    this.spec = spec
    this.#peers = peers
    this.#env = env
    this.#startTimeoutMs = startTimeoutMs
    this.api = new SocketApi(join(spec.dataDir, 'api.sock'))
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined
  }

  /** Starts the daemon and waits until `daemon.json` names its pid. */
  async start(timeoutMs = this.#startTimeoutMs): Promise<void> {
    const bootstrap = this.#peers()
    this.#expectExit = false
    const daemon = await spawnDaemon({
      dataDir: this.spec.dataDir,
      listen: [this.spec.listen],
      logLevel: process.env.MESHSYNC_CHAOS_LOG_LEVEL ?? 'warn',
      args: bootstrap.length > 0 ? ['--bootstrap', ...bootstrap] : [],
      wrapper: this.spec.wrapper,
      env: this.#env,
      keepOutput: 20_000,
    })
    const child = daemon.child
    this.child = child
    this.starts++
    // Every line the daemon logs, across restarts, next to its data dir.
    const logFile = createWriteStream(`${this.spec.dataDir}.log`, { flags: 'a' })
    child.once('exit', () => logFile.end())
    child.stderr?.on('data', (s: string) => {
      logFile.write(s)
      this.pendingYjs += s.split('Yjs update left pending').length - 1
      this.errorLines += s.split('"level":50').length - 1
    })
    this.#stderr = () => daemon.stderr()
    this.#exited = daemon.exited.then(({ code, signal }) => {
      if (!this.#expectExit) this.crashes.push(`node ${this.spec.index} exited unexpectedly (code ${code}, signal ${signal}): ${daemon.stderr().slice(-2000)}`)
    })
    try {
      await daemon.ready(timeoutMs, 25)
    } catch (error) {
      throw new Error(`node ${this.spec.index} did not start: ${error instanceof Error ? error.message.slice(-2500) : String(error)}`, { cause: error })
    }
    this.api.close()
    this.api = new SocketApi(join(this.spec.dataDir, 'api.sock'))
    this.ready = true
  }

  /** kill -9 and wait for the exit. */
  async kill9(): Promise<void> {
    if (!this.running) return
    this.#expectExit = true
    this.ready = false
    this.child?.kill('SIGKILL')
    await this.#exited
    this.paused = false
    this.api.close()
  }

  /** SIGTERM (SIGKILL after `timeoutMs`), waits for the exit. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (!this.running) return
    this.#expectExit = true
    this.ready = false
    if (this.paused) this.resume()
    this.child?.kill('SIGTERM')
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs)
    await this.#exited
    clearTimeout(timer)
    this.api.close()
  }

  pause(): void {
    if (!this.running || this.paused) return
    this.child?.kill('SIGSTOP')
    this.paused = true
  }

  resume(): void {
    if (!this.paused) return
    this.child?.kill('SIGCONT')
    this.paused = false
  }

  stderrTail(): string {
    return this.#stderr().slice(-4000)
  }
}

export interface ClusterOptions {
  readonly nodes: number
  readonly root: string
  /** Network namespaces (root only); otherwise loopback. */
  readonly network?: ChaosNetwork
  /** A tmpfs disk of its own for every node's data dir (netns mode). */
  readonly disks?: ChaosDisks
  /** Every daemon's config.json (default: none). */
  readonly config?: object
  /** Extra environment of every daemon (e.g. MESHSYNC_FAILPOINTS). */
  readonly env?: Record<string, string>
  /** Longest wait for a daemon to start, or restart after a fault (default 30 s). */
  readonly startTimeoutMs?: number
}

/** N daemons with their own data dirs, one cluster key, each bootstrapping from all the others. */
export class ChaosCluster {
  readonly nodes: ChaosNode[]
  readonly network: ChaosNetwork | undefined
  readonly disks: ChaosDisks | undefined

  private constructor(nodes: ChaosNode[], network: ChaosNetwork | undefined, disks: ChaosDisks | undefined) {
    this.nodes = nodes
    this.network = network
    this.disks = disks
  }

  static async create(options: ClusterOptions): Promise<ChaosCluster> {
    await rm(options.root, { recursive: true, force: true })
    await mkdir(options.root, { recursive: true })
    const specs: NodeSpec[] = []
    let clusterKey: string | undefined
    for (let i = 0; i < options.nodes; i++) {
      const dataDir = join(options.root, `node${i}`)
      if (options.disks) {
        await mkdir(dataDir)
        options.disks.mount(i, dataDir)
      }
      const { identity } = await initDataDir(dataDir, clusterKey ? { clusterKeyFile: clusterKey } : {})
      clusterKey ??= join(dataDir, 'cluster.key')
      if (options.config) await writeFile(join(dataDir, 'config.json'), JSON.stringify(options.config))
      const host = options.network ? options.network.addresses[i] : '127.0.0.1'
      const port = options.network ? 4718 : await freePort()
      const listen = `/ip4/${host}/tcp/${port}`
      const peerId = identity.peerId.toString()
      specs.push({ index: i, dataDir, listen, addr: `${listen}/p2p/${peerId}`, peerId, nodeId: identity.nodeId, wrapper: options.network ? options.network.wrapper(i) : [] })
    }
    const nodes: ChaosNode[] = specs.map((spec) => new ChaosNode(spec, () => specs.filter((s) => s !== spec).map((s) => s.addr), options.env ?? {}, options.startTimeoutMs))
    return new ChaosCluster(nodes, options.network, options.disks)
  }

  /** Starts every daemon at once (each may take up to 30 s plus 5 s per node: they share the machine's CPU). */
  async startAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start(30_000 + 5_000 * this.nodes.length)))
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()))
  }

  crashes(): string[] {
    return this.nodes.flatMap((n) => n.crashes)
  }
}

/** A TCP port that was free a moment ago (bound to 0 on 127.0.0.1, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
