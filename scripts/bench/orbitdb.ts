import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { IpcChild } from './ipc-child.ts'
import type { OrbitCommand, OrbitReport } from './peers/orbitdb/peer.ts'

/** Where the bench installs OrbitDB (its own package.json; node_modules is git-ignored). */
export const ORBITDB_DIR = join(import.meta.dirname, 'peers', 'orbitdb')
const PEER_SCRIPT = join(ORBITDB_DIR, 'peer.ts')
const MARKER = join(ORBITDB_DIR, 'node_modules', '.meshsync-bench-installed')
const WANT_VERSION = '4.0.0'

export type Availability = { readonly ok: true; readonly installedNow: boolean } | { readonly ok: false; readonly reason: string }

async function installedVersion(): Promise<string | undefined> {
  try {
    return (JSON.parse(await readFile(join(ORBITDB_DIR, 'node_modules', '@orbitdb', 'core', 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return undefined
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await readFile(path)
    return true
  } catch {
    return false
  }
}

/**
 * Installs OrbitDB 4.0.0 + Helia 6 (+ gossipsub, which Helia does not bring and OrbitDB needs) into
 * scripts/bench/peers/orbitdb/ with `npm install --ignore-scripts`, once: later runs reuse it.
 * Resolves with why not when it cannot be installed (no network, registry error, ...).
 */
export async function ensureOrbitDB(log: (message: string) => void): Promise<Availability> {
  let installedNow = false
  if (!((await exists(MARKER)) && (await installedVersion()) === WANT_VERSION)) {
    log(`  installing OrbitDB ${WANT_VERSION} + Helia 6 into ${ORBITDB_DIR} (first use; npm install --ignore-scripts)`)
    const started = Date.now()
    const result = await new Promise<{ ok: boolean; output: string }>((resolve) => {
      execFile(
        'npm',
        ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel', 'error'],
        { cwd: ORBITDB_DIR, timeout: 15 * 60_000, maxBuffer: 16 * 2 ** 20, env: { ...process.env, npm_config_update_notifier: 'false' } },
        (error, stdout, stderr) => resolve({ ok: error === null, output: `${error?.message ?? ''}\n${stderr}\n${stdout}`.trim() }),
      )
    })
    if (!result.ok) {
      const lines = result.output.split('\n').map((l) => l.trim()).filter(Boolean)
      const telling = lines.filter((l) => /npm error code|Error:|reason:/.test(l)).slice(0, 2)
      return { ok: false, reason: `npm install failed: ${(telling.length > 0 ? telling : lines.slice(-3)).join(' | ').slice(0, 300)}` }
    }
    const version = await installedVersion()
    if (version !== WANT_VERSION) return { ok: false, reason: `npm install left @orbitdb/core ${version ?? 'missing'}, not ${WANT_VERSION}` }
    await writeFile(MARKER, `${new Date().toISOString()}\n`)
    installedNow = true
    log(`  installed in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  }
  return { ok: true, installedNow }
}

type Peer = IpcChild<OrbitCommand, OrbitReport>

/** `n` OrbitDB nodes, one process each, connected in a full mesh, with one keyvalue database open on all. */
export class OrbitCluster {
  readonly peers: readonly Peer[]
  readonly versions: Readonly<Record<string, string>>
  readonly #dirs: readonly string[]

  private constructor(peers: readonly Peer[], versions: Readonly<Record<string, string>>, dirs: readonly string[]) {
    this.peers = peers
    this.versions = versions
    this.#dirs = dirs
  }

  static async start(n: number, baseDir: string): Promise<OrbitCluster> {
    const peers: Peer[] = []
    const dirs: string[] = []
    const addrs: string[] = []
    let versions: Readonly<Record<string, string>> = {}
    try {
      for (let i = 0; i < n; i++) {
        const dir = await mkdtemp(join(baseDir, 'orbitdb-'))
        dirs.push(dir)
        const { child, ready } = await IpcChild.start<OrbitCommand, OrbitReport>(PEER_SCRIPT, { cwd: ORBITDB_DIR, env: { ORBITDB_DIR: dir } })
        peers.push(child)
        if (ready.type !== 'ready') throw new Error('OrbitDB peer did not report ready')
        versions = ready.versions
        if (addrs.length > 0) await child.request({ type: 'dial', addrs }, 'dialed', 30_000)
        addrs.push(ready.addrs[0] as string)
      }
      const first = peers[0] as Peer
      const opened = await first.request({ type: 'create', name: 'meshsync-bench-kv' }, 'opened', 60_000)
      if (opened.type !== 'opened') throw new Error('OrbitDB database not opened')
      for (const peer of peers.slice(1)) await peer.request({ type: 'open', address: opened.address }, 'opened', 60_000)
      const deadline = Date.now() + 60_000
      for (;;) {
        const counts = await Promise.all(peers.map(async (p) => ((await p.request({ type: 'subscribers' }, 'subscribers')) as { count: number }).count))
        if (counts.every((c) => c >= n - 1)) break
        if (Date.now() > deadline) throw new Error(`OrbitDB peers not subscribed to the database topic: ${counts.join(', ')}`)
        await sleep(50)
      }
      return new OrbitCluster(peers, versions, dirs)
    } catch (error) {
      await Promise.all(peers.map((p) => p.stop()))
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
      throw error
    }
  }

  /**
   * Writes `keys[j]` on node j (each node `concurrency` concurrent put loops, all nodes at once);
   * resolves with performance.now() when the last put was acknowledged and when every node held
   * every entry, and the entries' hashes.
   */
  async writeAll(keys: readonly (readonly string[])[], values: readonly (readonly unknown[])[], concurrency: number, timeoutMs: number): Promise<{ ackedAt: number; convergedAt: number }> {
    const written = await Promise.all(
      this.peers.map((peer, j) => peer.request({ type: 'write', keys: keys[j] ?? [], values: values[j] ?? [], concurrency }, 'written', timeoutMs)),
    )
    const ackedAt = performance.now()
    const hashes = written.flatMap((w) => (w.type === 'written' ? w.hashes : []))
    await Promise.all(this.peers.map((peer) => peer.request({ type: 'await', hashes }, 'complete', timeoutMs)))
    return { ackedAt, convergedAt: performance.now() }
  }

  async read(node: number, keys: readonly string[]): Promise<readonly unknown[]> {
    const answer = await (this.peers[node] as Peer).request({ type: 'read', keys }, 'values', 120_000)
    return answer.type === 'values' ? answer.values : []
  }

  async stop(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.stop()))
    await Promise.all(this.#dirs.map((d) => rm(d, { recursive: true, force: true })))
  }
}
