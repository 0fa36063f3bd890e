import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { Option, type Command } from 'commander'
import type { OperationProgress } from '../backup/operations.ts'
import { BackupService, type BackupStatus, type BackupSummary } from '../backup/service.ts'
import type { RetentionPolicy } from '../backup/maintain.ts'
import { BACKUP_METHODS, backupMethod, DEFAULT_METHOD, type BackupMethodName } from '../backup/methods.ts'
import { defaultDataDir, loadConfig } from '../config.ts'
import { dataDirLayout } from '../data-dir.ts'
import { DaemonError } from '../errors.ts'
import { createLogger } from '../logger.ts'
import { MemoryKvStore } from '../storage/memory-kv-store.ts'
import { EntityStore } from '../store/entity-store.ts'
import { SocketClient, print } from './client.ts'
import { formatBytes, showProgress } from './progress.ts'

interface Common {
  dataDir?: string
  json?: boolean
  repo?: string
  passphraseFile?: string
  /** Old names of `--repo` (docs/cli.md, Backups), kept as aliases. */
  to?: string
  from?: string
}

/**
 * `meshsync backup create|list|verify|synthesize|prune` and `meshsync restore`. Taking a backup
 * and restoring into the live node go through the running daemon; the rest work on the
 * repository directly (no daemon needed: disaster recovery, offline maintenance).
 */
export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description('snapshot backups of the node (full, incremental, differential) and their repository')

  common(backup.command('create').description('take a backup through the running daemon'))
    .addOption(new Option('--type <type>', 'full | incremental | differential (default: incremental; full with --method files)').choices(['full', 'incremental', 'differential']))
    .addOption(new Option('--method <method>', 'entities (any type) | files (the database files as of one moment; a full, faster to take and restore)').choices(Object.keys(BACKUP_METHODS)).default(DEFAULT_METHOD))
    .addOption(repoAlias('--to'))
    .action(async (opts: Common & { type?: string; method: BackupMethodName }) => {
      const method = backupMethod(opts.method)
      const type = opts.type ?? method.defaultType
      const target = repoOf(opts)
      const passphrase = explicitPassphrase(opts)
      const done = daemonProgress('backup', opts)
      const result = await socket(opts)
        .call<BackupSummary & { target: string }>('POST', '/v1/backups', {
          type,
          ...(method.name !== DEFAULT_METHOD && { method: method.name }),
          ...(target !== undefined && { target: absoluteTarget(target) }),
          ...(passphrase !== undefined && { passphrase }),
        })
        .finally(done)
      if (opts.json) return print(result)
      console.log(`${result.type} backup ${result.id}: ${result.entities} entities, ${result.records} records, ${formatBytes(result.bytes)} in ${result.target}`)
    })

  common(backup.command('list').description('list the backups of a repository')).addOption(repoAlias('--from')).action(async (opts: Common) => {
    const result = await (await offline(opts)).list(await targetOpts(opts))
    if (opts.json) return print(result)
    if (result.sets.length === 0) console.log(`no backups in ${result.target}`)
    for (const s of result.sets) {
      const kind = backupMethod(s.method).kindOf(s)
      console.log(`${s.id}  ${kind.padEnd(12)} ${s.snapshotAt}  node ${s.node}  ${String(s.entities).padStart(7)} entities  ${formatBytes(s.bytes).padStart(9)}${s.parent ? `  <- ${s.parent}` : ''}`)
    }
    for (const b of result.broken) console.log(`${b.id}  UNREADABLE  ${b.code}: ${b.message}`)
  })

  common(backup.command('verify').description('read back every chunk of a backup and its chain (SHA-256, decryption, decoding, diffs rebuilt)'))
    .argument('<id>', 'backup id, unique prefix, or "latest"')
    .action(async (id: string, opts: Common) => {
      const service = await offline(opts)
      const result = await withProgress('verify', service, opts, () => service.verify(id, targetOpts(opts)))
      if (opts.json) return print(result)
      console.log(`backup ${result.id} is intact: ${result.chain.length} sets, ${result.objects} objects, ${result.records} records (${result.diffs} diffs rebuilt), ${formatBytes(result.bytes)}`)
    })

  common(backup.command('synthesize').description('merge a backup chain into a new full backup, offline'))
    .argument('<id>', 'backup id, unique prefix, or "latest"')
    .action(async (id: string, opts: Common) => {
      const service = await offline(opts)
      const result = await withProgress('synthesize', service, opts, () => service.synthesize(id, targetOpts(opts)))
      if (opts.json) return print(result)
      console.log(`synthetic full ${result.id}: ${result.entities} entities, ${formatBytes(result.bytes)}`)
    })

  common(backup.command('prune').description('remove the backups a retention policy does not keep (chains of kept backups stay)'))
    .addOption(new Option('--keep-last <n>', 'keep the n newest').argParser(parseCount))
    .addOption(new Option('--keep-hourly <n>', 'keep the newest of each of the last n hours').argParser(parseCount))
    .addOption(new Option('--keep-daily <n>', 'keep the newest of each of the last n days').argParser(parseCount))
    .addOption(new Option('--keep-weekly <n>', 'keep the newest of each of the last n weeks').argParser(parseCount))
    .addOption(new Option('--keep-monthly <n>', 'keep the newest of each of the last n months').argParser(parseCount))
    .option('--dry-run', 'only show what would be removed')
    .action(async (opts: Common & { keepLast?: number; keepHourly?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; dryRun?: boolean }) => {
      const policy: RetentionPolicy = {
        ...(opts.keepLast !== undefined && { last: opts.keepLast }),
        ...(opts.keepHourly !== undefined && { hourly: opts.keepHourly }),
        ...(opts.keepDaily !== undefined && { daily: opts.keepDaily }),
        ...(opts.keepWeekly !== undefined && { weekly: opts.keepWeekly }),
        ...(opts.keepMonthly !== undefined && { monthly: opts.keepMonthly }),
      }
      const result = await (await offline(opts)).prune(policy, { ...targetOpts(opts), ...(opts.dryRun && { dryRun: true }) })
      if (opts.json) return print(result)
      for (const k of result.kept) console.log(`keep    ${k.id}  (${k.reasons.join(', ')})`)
      for (const id of result.removed) console.log(`${result.dryRun ? 'would remove' : 'removed'} ${id}`)
      if (result.debris > 0) console.log(`removed ${result.debris} unfinished sets left by crashed backups`)
      if (result.staleLocks > 0) console.log(`broke ${result.staleLocks} stale locks`)
    })

  common(program.command('restore').description('restore a backup into the live node (as forward changes that replicate), or into a new data dir'))
    .argument('<backup>', 'backup id, unique prefix, or "latest"')
    .addOption(repoAlias('--from'))
    .option('--ns <ns>', 'only this namespace')
    .option('--id <id>', 'only this entity (with --ns)')
    .option('--into <dir>', 'a new data dir to rebuild (disaster recovery; no daemon needed)')
    .option('--cluster-key <file>', 'with --into: the cluster key the restored node joins with (a node\'s <data-dir>/cluster.key)')
    .option('--new-cluster', 'with --into: make a new cluster key instead (the node joins no existing cluster)')
    .action(async (ref: string, opts: Common & { ns?: string; id?: string; into?: string; clusterKey?: string; newCluster?: boolean }) => {
      const repo = repoOf(opts)
      if (opts.into !== undefined) {
        const clusterKey = clusterKeyFor(opts)
        const service = await offline(opts, clusterKey)
        const into = resolve(opts.into)
        const result = await withProgress('restore', service, opts, () =>
          service.restore({ backup: ref, into, ns: opts.ns, id: opts.id, ...targetOpts(opts) }),
        )
        const r = result as { entities: number; deleted: number; nodeId: string; into: string }
        const start = startCommand(r.into, clusterKey !== undefined ? bootstrapHint(opts) : undefined)
        if (opts.json) return print({ ...r, clusterKey: clusterKey ?? null, start })
        console.log(`restored ${r.entities} entities (${r.deleted} deleted) into ${r.into}; new node id ${r.nodeId}`)
        if (clusterKey !== undefined) console.log(`cluster key copied from ${clusterKey}. Start it with: ${start}`)
        else console.log(`a NEW cluster key is in ${dataDirLayout(r.into).clusterKey} (the node joins no existing cluster). Start it with: ${start}`)
        return
      }
      const passphrase = explicitPassphrase(opts)
      const done = daemonProgress('restore', opts)
      const result = await socket(opts)
        .call<{ entities: number; restored: number; deleted: number; undeleted: number; unchanged: number }>('POST', '/v1/restore', {
          backup: ref,
          ...(repo !== undefined && { target: absoluteTarget(repo) }),
          ...(opts.ns !== undefined && { ns: opts.ns }),
          ...(opts.id !== undefined && { id: opts.id }),
          ...(passphrase !== undefined && { passphrase }),
        })
        .finally(done)
      if (opts.json) return print(result)
      console.log(`restored ${result.restored}, undeleted ${result.undeleted}, deleted ${result.deleted}, unchanged ${result.unchanged} (of ${result.entities})`)
    })
}

/**
 * The cluster key a restore into a new data dir joins with (docs/backups.md, Into a new data
 * dir): `--cluster-key`, or none with `--new-cluster` (a new key is made). Without either it
 * refuses (CLUSTER_KEY_REQUIRED) instead of silently making a node of a new cluster, and names
 * the key of the node on this machine when there is one. A backup never holds the cluster key.
 */
function clusterKeyFor(opts: Common & { clusterKey?: string; newCluster?: boolean }): string | undefined {
  if (opts.clusterKey !== undefined && opts.newCluster) throw new DaemonError('INVALID_ARGUMENT', '--cluster-key and --new-cluster exclude each other')
  if (opts.clusterKey !== undefined) return resolve(opts.clusterKey)
  if (opts.newCluster) return undefined
  const local = dataDirLayout(opts.dataDir ?? defaultDataDir()).clusterKey
  const hint = existsSync(local) ? ` (this machine's node has ${local})` : ` (a node's <data-dir>/cluster.key)`
  throw new DaemonError('CLUSTER_KEY_REQUIRED', `restore --into needs the cluster key the node joins with: pass --cluster-key FILE${hint}, or --new-cluster to start a new cluster`)
}

/** A p2p address of the node running on the data dir, for the restored node's --bootstrap. */
function bootstrapHint(opts: Common): string | undefined {
  try {
    const info = JSON.parse(readFileSync(dataDirLayout(opts.dataDir ?? defaultDataDir()).daemonJson, 'utf8')) as { listen?: string[] }
    return info.listen?.[0]
  } catch {
    return undefined
  }
}

/** The command that starts a restored node (in its cluster when it has the cluster's key). */
function startCommand(into: string, bootstrap: string | undefined): string {
  return `meshsync start --data-dir ${into}${bootstrap !== undefined ? ` --bootstrap ${bootstrap}` : ''}`
}

function common(cmd: Command): Command {
  return cmd
    .option('--data-dir <dir>', 'data directory of the node (its config names the default repository)', process.env.MESHSYNC_DATA_DIR)
    .option('--repo <target>', 'repository: a directory or s3://bucket/prefix')
    .option('--passphrase-file <file>', 'file holding the repository passphrase (or set MESHSYNC_BACKUP_PASSPHRASE)')
    .option('--json', 'machine-readable output')
}

function socket(opts: Common): SocketClient {
  return new SocketClient(dataDirLayout(opts.dataDir ?? defaultDataDir()).socket)
}

/** A service for repository work without the daemon (its store is never read). */
async function offline(opts: Common, clusterKeyFile?: string): Promise<BackupService> {
  const config = await loadConfig(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {})
  const passphrase = explicitPassphrase(opts) ?? (config.backup.passphraseFile !== undefined ? readPassphrase(config.backup.passphraseFile) : undefined)
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: '0000000000000000', logger: createLogger('silent') })
  return new BackupService(
    { store, logger: createLogger(process.env.MESHSYNC_LOG_LEVEL ?? 'warn') },
    {
      target: repoOf(opts) !== undefined ? absoluteTarget(repoOf(opts) as string) : config.backup.target,
      passphrase,
      ...(clusterKeyFile !== undefined && { clusterKeyFile: resolve(clusterKeyFile) }),
    },
  )
}

function targetOpts(opts: Common): { target?: string } {
  const repo = repoOf(opts)
  return repo !== undefined ? { target: absoluteTarget(repo) } : {}
}

/** `--repo`, or one of its old names (`--to` for create, `--from` for restore and list). */
function repoOf(opts: Common): string | undefined {
  return opts.repo ?? opts.to ?? opts.from
}

/** An old name of `--repo`, still taken (hidden from the help). */
function repoAlias(flag: '--to' | '--from'): Option {
  return new Option(`${flag} <target>`, 'same as --repo').hideHelp()
}

/** `--passphrase-file`, else MESHSYNC_BACKUP_PASSPHRASE; undefined when neither is given. */
export function explicitPassphrase(opts: { passphraseFile?: string }): string | undefined {
  if (opts.passphraseFile !== undefined) return readPassphrase(opts.passphraseFile)
  const env = process.env.MESHSYNC_BACKUP_PASSPHRASE
  return env !== undefined && env !== '' ? env : undefined
}

function readPassphrase(file: string): string {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (cause) {
    throw new DaemonError('PASSPHRASE_REQUIRED', `cannot read the passphrase file ${file}`, { cause })
  }
  const line = text.split(/\r?\n/)[0] ?? ''
  if (line === '') throw new DaemonError('PASSPHRASE_REQUIRED', `the passphrase file ${file} is empty`)
  return line
}

/** A directory target resolved against the CLI's cwd (the daemon's differs). */
export function absoluteTarget(target: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(target) ? target : resolve(target)
}

function parseCount(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new DaemonError('INVALID_ARGUMENT', `not a count: ${value}`)
  return n
}


/**
 * Progress of an operation the daemon runs (docs/cli.md, Backups): its `/v1/status` read on a
 * second connection while the request waits. Nothing under --json. Returns the stop function.
 */
function daemonProgress(label: string, opts: Common): () => void {
  if (opts.json) return () => undefined
  const status = socket(opts)
  return showProgress(label, async () => (await status.call<{ backups?: BackupStatus }>('GET', '/v1/status')).backups?.operation ?? null)
}

/** Runs an offline operation with its progress shown (nothing under --json). */
async function withProgress<T>(label: string, service: BackupService, opts: Common, fn: () => Promise<T>): Promise<T> {
  const stop = opts.json ? () => undefined : showProgress(label, (): OperationProgress | null => service.status().operation)
  try {
    return await fn()
  } finally {
    stop()
  }
}
