import { readFileSync, writeSync } from 'node:fs'
import { Command, CommanderError, Option } from 'commander'
import { MeshsyncError } from '../../crdt/index.ts'
import { defaultDataDir, loadConfig, type ConfigOverrides } from '../config.ts'
import { Daemon } from '../daemon.ts'
import { dataDirLayout, initDataDir } from '../data-dir.ts'
import type { PeerRow } from '../dial-failures.ts'
import { DaemonError } from '../errors.ts'
import { createLogger } from '../logger.ts'
import { absoluteTarget, explicitPassphrase, registerBackupCommands } from './backup-commands.ts'
import { registerHistoryCommands } from './history-commands.ts'
import { registerQueryCommands } from './query-commands.ts'
import { SocketClient, enc, print } from './client.ts'

/** Options every client command accepts. */
interface ClientOptions {
  dataDir?: string
  json?: boolean
}

/** How long a stopping daemon may take before it exits anyway (docs/cli.md, start). */
const SHUTDOWN_GRACE_MS = 15_000

/** What commander ends with on purpose (help, version): exit with its code, print nothing more. */
const COMMANDER_EXITS = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version'])

/** Runs the CLI; exits the process with a non-zero code on failure. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram()
  const json = argv.includes('--json')
  try {
    await program.parseAsync([...argv])
  } catch (error) {
    if (error instanceof CommanderError) {
      if (COMMANDER_EXITS.has(error.code)) process.exit(error.exitCode)
      // An unknown command or option, a missing argument: one line, no usage (that is --help).
      const message = error.message.replace(/^error: /, '')
      fail(new DaemonError('INVALID_ARGUMENT', `${message} (see meshsync --help)`), json)
    }
    fail(error, json)
  }
}

/** The package's version (`meshsync --version`). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

function buildProgram(): Command {
  // Set before any command is added: subcommands inherit them.
  const program = new Command('meshsync')
    .description('Peer-to-peer sync daemon: LevelDB + version vectors + Yjs CRDTs over libp2p.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError(false)
    .exitOverride()
    // Commander's own error lines are dropped: main() prints each failure as one line (or JSON).
    .configureOutput({ outputError: () => undefined })

  program
    .command('start')
    .description('run a node in the foreground (initializes an empty data dir first)')
    .option('--data-dir <dir>', 'data directory', process.env.MESHSYNC_DATA_DIR)
    .option('--config <file>', 'config file (default: <data-dir>/config.json when present)')
    .addOption(new Option('--api-port <port>', 'REST API port on 127.0.0.1 (0 = any free port)').argParser(parsePort))
    .option('--api-host <host>', 'REST API host (default 127.0.0.1)')
    .option('--listen <multiaddr...>', 'libp2p listen address(es)')
    .option('--bootstrap <multiaddr...>', 'peers to dial at start')
    .option('--no-mdns', 'disable mDNS discovery on the LAN')
    .option('--cluster-key <file>', 'join the cluster holding this pre-shared key')
    .option('--log-level <level>', 'trace|debug|info|warn|error', undefined)
    .action(async (opts: ConfigOverrides & { mdns: boolean }) => runDaemon(opts))

  program
    .command('init')
    .description('create a data dir: node key, cluster key, API token')
    .option('--data-dir <dir>', 'data directory', process.env.MESHSYNC_DATA_DIR)
    .option('--cluster-key <file>', 'use this cluster key instead of making a new one')
    .option('--json', 'machine-readable output')
    .action(async (opts: { dataDir?: string; clusterKey?: string; json?: boolean }) => {
      const root = opts.dataDir ?? defaultDataDir()
      const result = await initDataDir(root, opts.clusterKey ? { clusterKeyFile: opts.clusterKey } : {})
      const out = { dataDir: root, peerId: result.identity.peerId.toString(), nodeId: result.identity.nodeId, created: result.created }
      if (opts.json) print(out)
      else {
        console.log(`data dir   ${root}`)
        console.log(`peer id    ${out.peerId}`)
        console.log(`node id    ${out.nodeId}`)
        console.log(result.created.length > 0 ? `created    ${result.created.join(', ')}` : 'already initialized; nothing changed')
        console.log(`cluster key ${result.layout.clusterKey} (copy it to every node of the cluster)`)
      }
    })

  clientCommand(program, 'status', 'show this node: ids, addresses, peers, version vector, entity counts').action(async (opts: ClientOptions) => {
    const status = await client(opts).call<Record<string, unknown>>('GET', '/v1/status')
    if (opts.json) return print(status)
    for (const [k, v] of Object.entries(status)) console.log(`${k.padEnd(14)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
  })

  clientCommand(program, 'peers', 'list known peers: state, node id, peer id, changes they lack (behind), last sync, addresses').action(async (opts: ClientOptions) => {
    const peers = await client(opts).call<PeerRow[]>('GET', '/v1/peers')
    if (opts.json) return print(peers)
    if (peers.length === 0) return console.log('no peers')
    for (const p of peers) {
      const behind = p.behind === null ? '?' : String(p.behind)
      if (p.peerId !== null) console.log(`${p.connected ? 'up  ' : 'down'} node ${p.nodeId ?? '?'.padEnd(16)} ${p.peerId} behind ${behind} last sync ${p.lastSyncAt ?? 'never'} ${p.addrs.join(' ')}`)
      const f = p.failing
      // A bootstrap address that does not answer, and why (docs/operations.md, Dial failures).
      if (f) console.log(`fail ${f.addr} ${f.error} (${f.attempts} failed ${f.attempts === 1 ? 'dial' : 'dials'} since ${f.since}): ${f.message}`)
    }
  })

  clientCommand(program, 'dashboard', 'print the URL that opens the web dashboard of the running node (it holds the API token)').action(
    async (opts: ClientOptions) => {
      const layout = dataDirLayout(opts.dataDir ?? defaultDataDir())
      let info: { api: { url: string } }
      try {
        info = JSON.parse(readFileSync(layout.daemonJson, 'utf8')) as { api: { url: string } }
      } catch (cause) {
        throw new DaemonError('DAEMON_NOT_RUNNING', `no daemon is running on ${layout.root} (start one with "meshsync start")`, { cause })
      }
      const url = `${info.api.url}/?token=${encodeURIComponent(readFileSync(layout.apiToken, 'utf8').trim())}`
      if (opts.json) return print({ url })
      console.log(url)
    },
  )

  clientCommand(program, 'put', 'replace an entity with a JSON record (from the argument or stdin)')
    .argument('<ns>')
    .argument('<id>')
    .argument('[json]', 'the record; read from stdin when absent')
    .action(async (ns: string, id: string, json: string | undefined, opts: ClientOptions) => {
      const body = readRecordArg(json)
      printEntity(await client(opts).call('PUT', entityPath(ns, id), body), opts)
    })

  clientCommand(program, 'patch', 'set fields of an entity (null removes a field)')
    .argument('<ns>')
    .argument('<id>')
    .argument('[json]', 'the fields; read from stdin when absent')
    .action(async (ns: string, id: string, json: string | undefined, opts: ClientOptions) => {
      const body = readRecordArg(json)
      printEntity(await client(opts).call('PATCH', entityPath(ns, id), body), opts)
    })

  atOptions(clientCommand(program, 'get', 'show an entity (with --at: as a backup holds it)'))
    .argument('<ns>')
    .argument('<id>')
    .action(async (ns: string, id: string, opts: ClientOptions & AtOptions) => {
      const { query, headers } = atRequest(opts)
      printEntity(await client(opts).call('GET', `${entityPath(ns, id)}${query.size > 0 ? `?${query}` : ''}`, undefined, headers), opts)
    })

  clientCommand(program, 'del', 'delete an entity (a tombstone that replicates)')
    .argument('<ns>')
    .argument('<id>')
    .action(async (ns: string, id: string, opts: ClientOptions) => {
      const result = await client(opts).call('DELETE', entityPath(ns, id))
      if (opts.json) print(result)
      else console.log(`deleted ${ns}/${id}`)
    })

  atOptions(clientCommand(program, 'ls', 'list entities of a namespace (with --at: as a backup holds them)'))
    .argument('<ns>')
    .option('--prefix <prefix>', 'only ids starting with this')
    .option('--after <id>', 'start after this id')
    .addOption(new Option('--limit <n>', 'page size (1-1000)').argParser(parsePositive).default(100))
    .option('--all', 'follow pages to the end')
    .action(async (ns: string, opts: ClientOptions & AtOptions & { prefix?: string; after?: string; limit: number; all?: boolean }) => {
      const c = client(opts)
      const { query, headers } = atRequest(opts)
      let after = opts.after
      for (;;) {
        const q = new URLSearchParams(query)
        q.set('limit', String(opts.limit))
        if (opts.prefix !== undefined) q.set('prefix', opts.prefix)
        if (after !== undefined) q.set('after', after)
        const page = await c.call<{ items: { id: string; value: unknown }[]; next?: string }>('GET', `/v1/ns/${enc(ns)}/entities?${q}`, undefined, headers)
        for (const item of page.items) console.log(opts.json ? JSON.stringify(item) : `${item.id}\t${JSON.stringify(item.value)}`)
        if (!opts.all || page.next === undefined) break
        after = page.next
      }
    })

  clientCommand(program, 'conflicts', 'list unresolved conflicts (every node reports the same ones)')
    .option('--ns <ns>', 'only this namespace')
    .action(async (opts: ClientOptions & { ns?: string }) => {
      const q = opts.ns !== undefined ? `?ns=${enc(opts.ns)}` : ''
      const list = await client(opts).call<{ ns: string; id: string; field: string; winner: unknown; values: { value: unknown; origin: string; deleted?: boolean }[] }[]>(
        'GET',
        `/v1/conflicts${q}`,
      )
      if (opts.json) return print(list)
      if (list.length === 0) return console.log('no conflicts')
      for (const c of list) {
        const values = c.values.map((v) => `${v.origin}: ${v.deleted ? '(deleted)' : JSON.stringify(v.value)}`).join('  |  ')
        console.log(`${c.ns}/${c.id}\t${c.field}\twinner ${JSON.stringify(c.winner)}\t${values}`)
      }
    })

  clientCommand(program, 'resolve', 'resolve the conflicts of an entity: writes the given fields on top of every sibling')
    .argument('<ns>')
    .argument('<id>')
    .argument('[json]', 'fields to write ({} keeps every winner); read from stdin when absent')
    .action(async (ns: string, id: string, json: string | undefined, opts: ClientOptions) => {
      const body = readRecordArg(json)
      printEntity(await client(opts).call('POST', `${entityPath(ns, id)}/resolve`, body), opts)
    })

  clientCommand(program, 'resync', 'reload a namespace from a peer, replacing the local copy (read-only full refresh)')
    .argument('<ns>')
    .requiredOption('--full', 'replace every entity of the namespace with the peer\'s (required: it drops local state)')
    .option('--from <peerId>', 'the peer to reload from (default: the first connected one)')
    .action(async (ns: string, opts: ClientOptions & { from?: string }) => {
      const result = await client(opts).call<{ from: string; entities: number; removed: number }>(
        'POST',
        `/v1/ns/${enc(ns)}/resync`,
        opts.from !== undefined ? { from: opts.from } : {},
      )
      if (opts.json) return print(result)
      console.log(`reloaded ${ns} from ${result.from}: ${result.entities} entities (replaced ${result.removed})`)
    })

  clientCommand(program, 'watch', 'stream changes of a namespace as they happen (Ctrl-C to stop)')
    .argument('<ns>')
    .option('--since <cursor>', 'resume after this cursor (default: now)')
    .action(async (ns: string, opts: ClientOptions & { since?: string }) => {
      const c = client(opts)
      const since = opts.since ?? 'now'
      const ac = new AbortController()
      process.once('SIGINT', () => ac.abort())
      try {
        await c.stream(
          `/v1/ns/${enc(ns)}/changes?since=${enc(since)}`,
          (event) => {
            if (opts.json) return console.log(JSON.stringify({ cursor: event.id, ...(JSON.parse(event.data) as object) }))
            const change = JSON.parse(event.data) as { id: string; op: string; value?: unknown }
            console.log(`${event.id}\t${change.op}\t${change.id}${change.value !== undefined ? `\t${JSON.stringify(change.value)}` : ''}`)
          },
          ac.signal,
        )
      } catch (error) {
        if (!ac.signal.aborted) throw error
      }
    })

  registerBackupCommands(program)
  registerQueryCommands(program)
  registerHistoryCommands(program)

  return program
}

/** `--at` and where that backup is (docs/backups.md, "Reading a backup without restoring"). */
interface AtOptions {
  at?: string
  repo?: string
  passphraseFile?: string
}

function atOptions(cmd: Command): Command {
  return cmd
    .option('--at <backup>', 'read as a backup holds it: a backup id, a unique prefix, latest, or a time (the newest backup taken at or before it)')
    .option('--repo <target>', 'with --at: the repository (default: backup.target of the node)')
    .option('--passphrase-file <file>', 'with --at: file holding the repository passphrase (or set MESHSYNC_BACKUP_PASSPHRASE; default: the node\'s)')
}

/** The query and headers of a read `--at` a backup (none without `--at`). */
function atRequest(opts: AtOptions): { query: URLSearchParams; headers: Record<string, string> } {
  const query = new URLSearchParams()
  if (opts.at === undefined) {
    if (opts.repo !== undefined || opts.passphraseFile !== undefined) throw new DaemonError('INVALID_ARGUMENT', '--repo and --passphrase-file go with --at')
    return { query, headers: {} }
  }
  query.set('at', opts.at)
  if (opts.repo !== undefined) query.set('target', absoluteTarget(opts.repo))
  const passphrase = explicitPassphrase(opts)
  return { query, headers: passphrase !== undefined ? { 'x-backup-passphrase': passphrase } : {} }
}

function clientCommand(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--data-dir <dir>', 'data directory of the node to talk to', process.env.MESHSYNC_DATA_DIR)
    .option('--json', 'machine-readable output')
}

async function runDaemon(opts: ConfigOverrides & { mdns: boolean }): Promise<void> {
  const config = await loadConfig({ ...opts, mdns: opts.mdns })
  const logger = createLogger(config.log.level)
  // Handlers go in before anything starts: a SIGTERM that arrives while the daemon starts (say,
  // right after daemon.json appears) still shuts it down cleanly once it is up.
  const started: { daemon?: Daemon } = {}
  let requested: NodeJS.Signals | undefined
  let signals = 0
  const stop = (signal: NodeJS.Signals, running: Daemon): void => {
    logger.info({ signal }, 'shutting down')
    // A stop that hangs does not keep the process (docs/operations.md, Stopping).
    setTimeout(() => {
      exitStuck(logger, `shutdown took longer than its grace period (${SHUTDOWN_GRACE_MS / 1000} s); exiting`)
    }, SHUTDOWN_GRACE_MS).unref()
    running.stop().then(
      () => {
        if (running.backups.abandoned > 0) exitStuck(logger, 'stopped; a backup operation is stuck in a file-system call that never returned, so the process ends without waiting for it')
        logger.flush()
        process.exit(0)
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  const shutdown = (signal: NodeJS.Signals): void => {
    if (++signals > 1) process.exit(130)
    if (started.daemon) stop(signal, started.daemon)
    else requested = signal
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)
  const daemon = await Daemon.start(config, logger)
  started.daemon = daemon
  const { info } = daemon
  console.log(`meshsync node ${info.nodeId} ready`)
  console.log(`  peer id   ${info.peerId}`)
  console.log(`  api       ${info.api.url}  (Authorization: Bearer <${dataDirLayout(config.dataDir).apiToken}>)`)
  console.log(`  socket    ${info.api.socket}`)
  // The addresses other nodes pass to --bootstrap (docs/cli.md); one line each.
  for (const addr of info.listen) console.log(`  p2p       ${addr}`)
  console.log(`  dashboard ${info.api.url}/  (sign in once with the URL \`meshsync dashboard\` prints)`)
  console.log(`  data dir  ${config.dataDir}`)
  if (requested) stop(requested, daemon)
}

/**
 * Ends the process at once with one line on stderr. A thread of Node's pool stuck in a
 * file-system call keeps `process.exit` waiting for it for ever (Node joins the pool on exit);
 * SIGKILL to itself is the one exit that does not wait.
 */
function exitStuck(logger: ReturnType<typeof createLogger>, message: string): never {
  logger.flush()
  writeSync(2, `meshsync: ${message}\n`)
  process.kill(process.pid, 'SIGKILL')
  process.exit(1)
}

function client(opts: ClientOptions): SocketClient {
  return new SocketClient(dataDirLayout(opts.dataDir ?? defaultDataDir()).socket)
}

function readRecordArg(json: string | undefined): unknown {
  const text = json ?? readFileSync(0, 'utf8')
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new DaemonError('INVALID_JSON', 'the record is not valid JSON')
  }
}

function printEntity(entity: unknown, opts: ClientOptions): void {
  if (opts.json) return print(entity)
  console.log(JSON.stringify(entity, null, 2))
}


function entityPath(ns: string, id: string): string {
  return `/v1/ns/${enc(ns)}/entities/${enc(id)}`
}


function parsePort(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new DaemonError('INVALID_ARGUMENT', `not a port number: ${value}`)
  return n
}

function parsePositive(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new DaemonError('INVALID_ARGUMENT', `not a positive integer: ${value}`)
  return n
}

/**
 * One line on stderr and a non-zero exit: never a stack trace for an expected failure. Under
 * `--json` the line is `{"error": {"code", "message"}}`, as the API's (docs/cli.md).
 */
function fail(error: unknown, json = false): never {
  if (json) {
    const code = error instanceof MeshsyncError ? error.code : 'INTERNAL'
    console.error(JSON.stringify({ error: { code, message: error instanceof Error ? error.message : String(error) } }))
  } else if (error instanceof MeshsyncError) console.error(`meshsync: ${error.message} (${error.code})`)
  else if (error instanceof Error) console.error(`meshsync: ${error.message}`)
  else console.error(`meshsync: ${String(error)}`)
  process.exit(1)
}
