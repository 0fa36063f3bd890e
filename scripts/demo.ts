/**
 * `npm run demo`: three meshsync daemons on loopback that form a cluster, take live writes on
 * every node, converge (per-node counts and version vectors printed until they are equal, with
 * the time it took), take a backup when this build has `meshsync backup create`, and keep running
 * with a trickle of writes so the dashboards (URLs printed) have something to show. Ctrl-C stops
 * every daemon cleanly and removes the temp dirs.
 *
 * Options: --nodes N (default 3), --burst S (seconds of fast writes, default 5), --write-ms MS
 * (pause between a node's writes during the burst, default 50), --duration S (stop on its own
 * after S seconds of the live phase; default: until Ctrl-C), --keep (leave the data dirs).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const bin = join(repoRoot, 'bin', 'meshsync.mjs')

const { values: opts } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    burst: { type: 'string', default: '5' },
    'write-ms': { type: 'string', default: '50' },
    duration: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
})
const NODES = Math.max(2, Math.min(9, Number(opts.nodes)))
const BURST_MS = Number(opts.burst) * 1000
const WRITE_MS = Number(opts['write-ms'])
const DURATION_MS = opts.duration === undefined ? Infinity : Number(opts.duration) * 1000
const NAMES = 'abcdefghi'.split('')

type VersionVector = Record<string, number>

interface Status {
  nodeId: string
  peers: number
  versionVector: VersionVector
  entities: number
  namespaces: Record<string, number>
}

interface DemoNode {
  readonly name: string
  readonly dataDir: string
  readonly child: ChildProcess
  readonly exited: Promise<void>
  info: { pid: number; nodeId: string; peerId: string; api: { url: string; socket: string }; listen: string[] }
  token: string
  writes: number
}

const nodes: DemoNode[] = []
let root = ''
let stopping: Promise<void> | undefined
const writers = new AbortController()

function log(line = ''): void {
  console.log(line)
}

/** One JSON request over the node's Unix socket (no token needed there). */
function call<T>(node: DemoNode, method: string, path: string, body?: unknown): Promise<T> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: node.info.api.socket,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {},
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', reject)
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          if ((res.statusCode ?? 0) >= 400) return reject(new Error(`${method} ${path} on ${node.name}: ${res.statusCode} ${text}`))
          resolve(text === '' ? (undefined as T) : (JSON.parse(text) as T))
        })
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

async function startNode(name: string, extraArgs: string[]): Promise<DemoNode> {
  const dataDir = join(root, name)
  await mkdir(dataDir)
  const args = [bin, 'start', '--data-dir', dataDir, '--api-port', '0', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--log-level', 'warn', ...extraArgs]
  // Own process group: Ctrl-C reaches the demo only, which then stops each daemon with one SIGTERM.
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const node: DemoNode = { name, dataDir, child, exited, info: undefined as never, token: '', writes: 0 }
  nodes.push(node)
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`node ${name} exited before it was ready:\n${stderr}`)
    try {
      const info = JSON.parse(await readFile(join(dataDir, 'daemon.json'), 'utf8')) as DemoNode['info']
      if (info.pid === child.pid) {
        node.info = info
        break
      }
    } catch {
      // not written yet
    }
    if (Date.now() > deadline) throw new Error(`node ${name} not ready after 30 s:\n${stderr}`)
    await sleep(50)
  }
  node.token = (await readFile(join(dataDir, 'api-token'), 'utf8')).trim()
  return node
}

function letters(vv: VersionVector): string {
  const byNode = new Map(nodes.map((n) => [n.info.nodeId, n.name]))
  return Object.entries(vv)
    .map(([id, n]) => [byNode.get(id) ?? id.slice(0, 6), n] as const)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${k}:${n}`)
    .join(' ')
}

async function statuses(): Promise<Status[]> {
  return Promise.all(nodes.map((n) => call<Status>(n, 'GET', '/v1/status')))
}

function statusLine(all: Status[]): string {
  return all.map((s, i) => `${nodes[i]?.name}: ${String(s.entities).padStart(5)} entities [${letters(s.versionVector)}]`).join('  |  ')
}

/** One node's writes: its own entities, and now and then a shared one that every node edits (conflicts to resolve). */
async function writeLoop(node: DemoNode, pauseMs: number, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const n = ++node.writes
    try {
      if (n % 10 === 0) await call(node, 'PATCH', '/v1/ns/inventory/entities/widget', { stock: Math.floor(Math.random() * 100), by: node.name })
      else await call(node, 'PUT', `/v1/ns/readings/entities/${node.name}-${n % 200}`, { node: node.name, n, celsius: Math.round((18 + Math.random() * 8) * 10) / 10, at: new Date().toISOString() })
    } catch (error) {
      if (!signal.aborted) log(`  write on ${node.name} failed: ${error instanceof Error ? error.message : String(error)}`)
    }
    await sleep(pauseMs, undefined, { signal }).catch(() => undefined)
  }
}

function sameVectors(all: Status[]): boolean {
  const first = JSON.stringify(sortedVv(all[0]?.versionVector ?? {}))
  return all.every((s) => JSON.stringify(sortedVv(s.versionVector)) === first && s.entities === all[0]?.entities)
}

function sortedVv(vv: VersionVector): VersionVector {
  return Object.fromEntries(Object.entries(vv).sort(([a], [b]) => a.localeCompare(b)))
}

async function backupIfAvailable(node: DemoNode): Promise<void> {
  const help = spawnSync(process.execPath, [bin, 'backup', 'create', '--help'], { cwd: repoRoot, encoding: 'utf8' })
  // An unknown command with --help prints the top-level help and exits 0: look for its own usage line.
  if (help.status !== 0 || !/Usage: \S+ backup create/.test(help.stdout)) {
    log('backup: skipped (this build has no `meshsync backup create` yet)')
    return
  }
  const target = join(root, 'backups')
  await mkdir(target, { recursive: true })
  log(`backup: meshsync backup create --type full --to ${target} --data-dir ${node.dataDir}`)
  const run = spawnSync(process.execPath, [bin, 'backup', 'create', '--type', 'full', '--to', target, '--data-dir', node.dataDir], { cwd: repoRoot, encoding: 'utf8' })
  const out = `${run.stdout}${run.stderr}`.trim()
  log(out.split('\n').map((l) => `  ${l}`).join('\n'))
  log(run.status === 0 ? 'backup: done' : `backup: failed (exit ${run.status})`)
}

async function shutdown(reason: string): Promise<void> {
  stopping ??= (async () => {
    log(`\n${reason}: stopping ${nodes.length} node(s)…`)
    writers.abort()
    await Promise.all(
      nodes.map(async (n) => {
        if (n.child.exitCode !== null || n.child.signalCode !== null) return
        n.child.kill('SIGTERM')
        const timer = setTimeout(() => n.child.kill('SIGKILL'), 15_000)
        await n.exited
        clearTimeout(timer)
      }),
    )
    if (root && !opts.keep) await rm(root, { recursive: true, force: true })
    log(root && opts.keep ? `stopped; data kept in ${root}` : 'stopped; temp dirs removed')
  })()
  return stopping
}

async function main(): Promise<void> {
  root = await mkdtemp(join(tmpdir(), 'meshsync-demo-'))
  log(`meshsync demo: ${NODES} nodes on 127.0.0.1, data in ${root}`)
  const first = await startNode('a', [])
  log(`  a  node ${first.info.nodeId}  api ${first.info.api.url}  pid ${first.info.pid}`)
  const join_ = ['--cluster-key', join(first.dataDir, 'cluster.key'), '--bootstrap', first.info.listen[0] as string]
  const rest = await Promise.all(NAMES.slice(1, NODES).map((name) => startNode(name, join_)))
  for (const n of rest) log(`  ${n.name}  node ${n.info.nodeId}  api ${n.info.api.url}  pid ${n.info.pid}  (bootstrap: a)`)

  const joinedAt = Date.now()
  for (;;) {
    const all = await statuses()
    if (all.every((s) => s.peers >= 1)) break
    if (Date.now() - joinedAt > 30_000) throw new Error(`the nodes did not connect: ${all.map((s) => s.peers).join(', ')} peers`)
    await sleep(100)
  }
  log(`cluster formed in ${Date.now() - joinedAt} ms`)

  log(`\nlive writes on every node for ${BURST_MS / 1000} s (readings/<node>-<n>, and inventory/widget edited by all)…`)
  const burst = new AbortController()
  const stopBurst = (): void => burst.abort()
  writers.signal.addEventListener('abort', stopBurst)
  const loops = nodes.map((n) => writeLoop(n, WRITE_MS, burst.signal))
  const burstEnd = Date.now() + BURST_MS
  while (Date.now() < burstEnd && !writers.signal.aborted) {
    await sleep(Math.min(1000, Math.max(0, burstEnd - Date.now())))
    log(`  ${statusLine(await statuses())}`)
  }
  burst.abort()
  await Promise.all(loops)
  if (writers.signal.aborted) return
  const writes = nodes.reduce((a, n) => a + n.writes, 0)
  const lastWrite = Date.now()
  log(`\n${writes} acknowledged writes; waiting for convergence…`)
  let lastPrint = 0
  for (;;) {
    const all = await statuses()
    const done = sameVectors(all)
    if (done || Date.now() - lastPrint >= 250) {
      log(`  +${String(Date.now() - lastWrite).padStart(5)} ms  ${statusLine(all)}`)
      lastPrint = Date.now()
    }
    if (done) break
    if (Date.now() - lastWrite > 60_000) throw new Error('no convergence within 60 s')
    await sleep(25)
  }
  log(`converged in ${Date.now() - lastWrite} ms after the last acknowledged write: every node has the same version vector and entity count`)
  const conflicts = await call<unknown[]>(first, 'GET', '/v1/conflicts')
  if (conflicts.length > 0) log(`${conflicts.length} open conflict(s) from the concurrent edits of inventory/widget: resolve them on a dashboard`)

  log('')
  await backupIfAvailable(first)

  log('\ndashboards (each link signs the browser in to that node once):')
  for (const n of nodes) log(`  ${n.name}  ${n.info.api.url}/?token=${n.token}`)
  log(`\nnodes keep writing about once a second each; ${Number.isFinite(DURATION_MS) ? `stopping in ${DURATION_MS / 1000} s` : 'Ctrl-C to stop'}`)
  const trickle = nodes.map((n) => writeLoop(n, 1000, writers.signal))
  if (Number.isFinite(DURATION_MS)) {
    await sleep(DURATION_MS, undefined, { signal: writers.signal }).catch(() => undefined)
    await shutdown('duration over')
  }
  await Promise.all(trickle)
}

process.on('SIGINT', () => void shutdown('Ctrl-C').then(() => process.exit(0)))
process.on('SIGTERM', () => void shutdown('SIGTERM').then(() => process.exit(0)))
// Never leave a daemon behind, even when the demo itself dies.
process.on('exit', () => {
  for (const n of nodes) if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL')
})

main().catch(async (error: unknown) => {
  if (stopping) return // Ctrl-C while a request was in flight: the signal handler finishes the exit
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`)
  await shutdown('error')
  process.exit(1)
})
