import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { isValidNamespace, MeshsyncError } from '../crdt/index.ts'
import type { ConflictPolicy, NamespaceMode } from './store/entity-store.ts'
import { parseIndexDefinition } from './store/indexes.ts'
import { DEFAULT_ANTI_ENTROPY_FANOUT, DEFAULT_GOSSIP_PACE_MAX_MS, DEFAULT_GOSSIP_PACE_MS } from './replication/replicator.ts'
import { bootstrapAddressProblem, listenAddressProblem } from '../transport/addresses.ts'
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MIN_CONNECTIONS } from '../transport/overlay.ts'

/** Everything a daemon is started with. Config file < command-line flags. */
export interface DaemonConfig {
  readonly dataDir: string
  readonly api: {
    /** TCP host of the REST API (127.0.0.1: local only). */
    readonly host: string
    /** TCP port; 0 picks a free one. */
    readonly port: number
    /** Largest request body in bytes. */
    readonly bodyLimit: number
  }
  readonly p2p: {
    readonly listen: readonly string[]
    readonly bootstrap: readonly string[]
    readonly mdns: boolean
    readonly clusterKeyFile?: string
    /** When non-empty, only these peer ids may connect. */
    readonly allowPeers: readonly string[]
    /** Gossip fast path (off: anti-entropy alone). */
    readonly gossip: boolean
    /** Mean period of the anti-entropy tick, ms. */
    readonly antiEntropyIntervalMs: number
    /** Most connected peers one anti-entropy tick syncs with (at least 1). */
    readonly antiEntropyFanout: number
    /** Least time between two gossip publishes, ms; a burst's commits share one message (0: one per commit). */
    readonly gossipPaceMs: number
    /** Most time between two gossip publishes, ms, reached under a sustained write load. */
    readonly gossipPaceMaxMs: number
    /** Sign gossip messages, on the topic of nodes before 0.2 (for a rolling upgrade); off by default. */
    readonly signGossip: boolean
    /** Low watermark of the overlay: below this many connected peers, known members are dialed (docs/sync-protocol.md, Membership and the overlay). */
    readonly minConnections: number
    /** High watermark of the overlay: above this many connected peers, connections are closed. */
    readonly maxConnections: number
  }
  /** Per-namespace replication mode; namespaces not listed are two-way. */
  readonly namespaces: Readonly<Record<string, NamespaceSettings>>
  /** Queries (docs/queries.md). */
  readonly query: {
    /** Most entities one query may examine; beyond it 400 QUERY_NEEDS_INDEX. */
    readonly maxScan: number
    /** Most bytes of unsent events one live query stream holds; past it the stream ends (SLOW_CONSUMER). */
    readonly liveBufferBytes: number
  }
  readonly store: {
    readonly docCacheSize: number
    readonly maxGroupOps: number
    readonly maxQueuedOps: number
  }
  readonly log: { readonly level: string }
  /** Tombstone garbage collection (docs/tombstone-gc.md). */
  readonly gc: {
    /** A deleted entity is kept this long before it may be purged (and writes to it start over). */
    readonly tombstoneGraceMs: number
    /** Period of the GC sweep; 0 disables purging. */
    readonly intervalMs: number
    /** Largest clock difference between nodes the GC allows for. */
    readonly clockSkewMs: number
  }
  /** Backups (docs/backups.md): default repository, passphrase file, schedules. */
  readonly backup: BackupConfig
}

/** One entry of `namespaces`. */
export interface NamespaceSettings {
  readonly mode: NamespaceMode
  readonly conflicts: ConflictPolicy
  /** Secondary indexes (docs/queries.md): per name, its fields as `[path, "asc"|"desc"]`. */
  readonly indexes?: Readonly<Record<string, readonly (readonly [string, 'asc' | 'desc'])[]>>
}

/** The `backup` section of the config file. */
export interface BackupConfig {
  /** Default repository: a directory or `s3://bucket/prefix[?endpoint=...]`. */
  readonly target?: string
  /** File holding the repository passphrase (first line); absent: no encryption. */
  readonly passphraseFile?: string
  /** Periodic backups taken by the daemon. */
  readonly schedules: readonly { readonly type: 'full' | 'incremental' | 'differential'; readonly method?: 'entities' | 'files'; readonly everyMs: number; readonly keep?: Readonly<Record<'last' | 'hourly' | 'daily' | 'weekly' | 'monthly', number>> }[]
}

/** The flags of `meshsync start` that override the file. */
export interface ConfigOverrides {
  dataDir?: string
  config?: string
  apiPort?: number
  apiHost?: string
  listen?: string[]
  bootstrap?: string[]
  mdns?: boolean
  clusterKey?: string
  logLevel?: string
}

/** Invalid configuration (file or flags). */
export class ConfigError extends MeshsyncError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, options)
    this.name = 'ConfigError'
  }
}

export const DEFAULT_API_PORT = 4717
export const DEFAULT_P2P_PORT = 4718

/** `$MESHSYNC_DATA_DIR`, else `$XDG_DATA_HOME/meshsync`, else `~/.local/share/meshsync`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MESHSYNC_DATA_DIR) return resolve(env.MESHSYNC_DATA_DIR)
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'meshsync')
}

/** Defaults for a data dir. */
export function defaultConfig(dataDir: string): DaemonConfig {
  return {
    dataDir,
    api: { host: '127.0.0.1', port: DEFAULT_API_PORT, bodyLimit: 8 * 1024 * 1024 },
    p2p: { listen: [`/ip4/0.0.0.0/tcp/${DEFAULT_P2P_PORT}`], bootstrap: [], mdns: true, allowPeers: [], gossip: true, antiEntropyIntervalMs: 10_000, antiEntropyFanout: DEFAULT_ANTI_ENTROPY_FANOUT, gossipPaceMs: DEFAULT_GOSSIP_PACE_MS, gossipPaceMaxMs: DEFAULT_GOSSIP_PACE_MAX_MS, signGossip: false, minConnections: DEFAULT_MIN_CONNECTIONS, maxConnections: DEFAULT_MAX_CONNECTIONS },
    namespaces: {},
    query: { maxScan: 100_000, liveBufferBytes: 8 * 1024 * 1024 },
    store: { docCacheSize: 1000, maxGroupOps: 2000, maxQueuedOps: 50_000 },
    log: { level: 'info' },
    gc: { tombstoneGraceMs: 24 * 3600_000, intervalMs: 60_000, clockSkewMs: 60_000 },
    backup: { schedules: [] },
  }
}

/**
 * The effective config: defaults, then the config file (`--config`, else `<data-dir>/config.json`
 * when present), then flags.
 */
export async function loadConfig(overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env): Promise<DaemonConfig> {
  const dataDir = resolve(overrides.dataDir ?? defaultDataDir(env))
  const base = defaultConfig(dataDir)
  const file = overrides.config ? resolve(overrides.config) : join(dataDir, 'config.json')
  const fromFile = await readConfigFile(file, overrides.config !== undefined)
  const merged = mergeFile(base, fromFile, file)
  return {
    ...merged,
    api: {
      ...merged.api,
      ...(overrides.apiPort !== undefined && { port: checkPort(overrides.apiPort, '--api-port') }),
      ...(overrides.apiHost !== undefined && { host: overrides.apiHost }),
    },
    p2p: {
      ...merged.p2p,
      ...(overrides.listen?.length && { listen: checkListen(overrides.listen, '--listen') }),
      ...(overrides.bootstrap?.length && { bootstrap: checkBootstrap(overrides.bootstrap, '--bootstrap') }),
      ...(overrides.mdns !== undefined && { mdns: overrides.mdns }),
      ...(overrides.clusterKey !== undefined && { clusterKeyFile: resolve(overrides.clusterKey) }),
    },
    log: { level: overrides.logLevel !== undefined ? checkLogLevel(overrides.logLevel, '--log-level') : merged.log.level },
  }
}

/** `list` when every address can be listened on by libp2p's TCP transport; a ConfigError naming the first that cannot. */
function checkListen(list: readonly string[], where: string): string[] {
  for (const addr of list) {
    const problem = listenAddressProblem(addr)
    if (problem !== undefined) throw new ConfigError(`${where}: ${addr} ${problem}`)
  }
  return [...list]
}

/** pino's levels (docs/configuration.md, log.level). */
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

function checkLogLevel(level: string, where: string): string {
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`${where}: ${JSON.stringify(level)} is not a log level (one of ${LOG_LEVELS.join(', ')})`)
  return level
}

/** `list` when every address can be dialed as a bootstrap peer; a ConfigError naming the first that cannot. */
function checkBootstrap(list: readonly string[], where: string): string[] {
  for (const addr of list) {
    const problem = bootstrapAddressProblem(addr)
    if (problem !== undefined) throw new ConfigError(`${where}: ${addr} ${problem}`)
  }
  return [...list]
}

async function readConfigFile(file: string, required: boolean): Promise<Record<string, unknown>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (cause) {
    // No file there, or the data dir is not a directory (the start then says so: DATA_DIR_UNUSABLE).
    if (!required && ['ENOENT', 'ENOTDIR'].includes((cause as NodeJS.ErrnoException).code ?? '')) return {}
    throw new ConfigError(`cannot read config file ${file}`, { cause })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    throw new ConfigError(`config file ${file} is not valid JSON`, { cause })
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`config file ${file} must hold a JSON object`)
  return parsed as Record<string, unknown>
}

function mergeFile(base: DaemonConfig, file: Record<string, unknown>, where: string): DaemonConfig {
  const known = new Set(['api', 'p2p', 'store', 'log', 'namespaces', 'backup', 'gc', 'query'])
  for (const key of Object.keys(file)) if (!known.has(key)) throw new ConfigError(`${where}: unknown setting "${key}"`)
  const api = section(file, 'api', where)
  const p2p = section(file, 'p2p', where)
  const store = section(file, 'store', where)
  const log = section(file, 'log', where)
  const gc = section(file, 'gc', where)
  const query = section(file, 'query', where)
  for (const key of Object.keys(query)) if (!Object.hasOwn(base.query, key)) throw new ConfigError(`${where}: unknown setting "query.${key}"`)
  for (const key of Object.keys(gc)) if (!Object.hasOwn(base.gc, key)) throw new ConfigError(`${where}: unknown setting "gc.${key}"`)
  return {
    dataDir: base.dataDir,
    api: {
      host: str(api, 'host', base.api.host, where),
      port: checkPort(num(api, 'port', base.api.port, where), `${where}: api.port`),
      bodyLimit: num(api, 'bodyLimit', base.api.bodyLimit, where),
    },
    p2p: {
      listen: checkListen(strList(p2p, 'listen', base.p2p.listen, where), `${where}: p2p.listen`),
      bootstrap: checkBootstrap(strList(p2p, 'bootstrap', base.p2p.bootstrap, where), `${where}: p2p.bootstrap`),
      mdns: bool(p2p, 'mdns', base.p2p.mdns, where),
      ...(typeof p2p.clusterKeyFile === 'string' && { clusterKeyFile: resolve(p2p.clusterKeyFile) }),
      allowPeers: strList(p2p, 'allowPeers', base.p2p.allowPeers, where),
      gossip: bool(p2p, 'gossip', base.p2p.gossip, where),
      antiEntropyIntervalMs: num(p2p, 'antiEntropyIntervalMs', base.p2p.antiEntropyIntervalMs, where),
      antiEntropyFanout: atLeastOne(num(p2p, 'antiEntropyFanout', base.p2p.antiEntropyFanout, where), `${where}: p2p.antiEntropyFanout`),
      gossipPaceMs: num(p2p, 'gossipPaceMs', base.p2p.gossipPaceMs, where),
      gossipPaceMaxMs: num(p2p, 'gossipPaceMaxMs', base.p2p.gossipPaceMaxMs, where),
      signGossip: bool(p2p, 'signGossip', base.p2p.signGossip, where),
      ...watermarks(p2p, base.p2p, where),
    },
    namespaces: namespaceModes(section(file, 'namespaces', where), where),
    query: {
      maxScan: num(query, 'maxScan', base.query.maxScan, where),
      liveBufferBytes: atLeastOne(num(query, 'liveBufferBytes', base.query.liveBufferBytes, where), `${where}: query.liveBufferBytes`),
    },
    store: {
      docCacheSize: num(store, 'docCacheSize', base.store.docCacheSize, where),
      maxGroupOps: num(store, 'maxGroupOps', base.store.maxGroupOps, where),
      maxQueuedOps: num(store, 'maxQueuedOps', base.store.maxQueuedOps, where),
    },
    log: { level: checkLogLevel(str(log, 'level', base.log.level, where), `${where}: log.level`) },
    gc: {
      tombstoneGraceMs: num(gc, 'tombstoneGraceMs', base.gc.tombstoneGraceMs, where),
      intervalMs: num(gc, 'intervalMs', base.gc.intervalMs, where),
      clockSkewMs: num(gc, 'clockSkewMs', base.gc.clockSkewMs, where),
    },
    backup: backupSection(section(file, 'backup', where), where),
  }
}

const BACKUP_TYPES = ['full', 'incremental', 'differential'] as const
const KEEP_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly'] as const

function backupSection(raw: Record<string, unknown>, where: string): BackupConfig {
  for (const key of Object.keys(raw)) if (!['target', 'passphraseFile', 'schedules'].includes(key)) throw new ConfigError(`${where}: unknown setting "backup.${key}"`)
  const schedules = raw.schedules ?? []
  if (!Array.isArray(schedules)) throw new ConfigError(`${where}: backup.schedules must be a list`)
  return {
    ...(raw.target !== undefined && { target: str(raw, 'target', '', where) }),
    ...(raw.passphraseFile !== undefined && { passphraseFile: resolve(str(raw, 'passphraseFile', '', where)) }),
    schedules: schedules.map((s: unknown, i) => {
      const entry = (typeof s === 'object' && s !== null ? s : {}) as Record<string, unknown>
      const type = entry.type
      if (typeof type !== 'string' || !(BACKUP_TYPES as readonly string[]).includes(type)) throw new ConfigError(`${where}: backup.schedules[${i}].type must be one of ${BACKUP_TYPES.join(', ')}`)
      const method = entry.method
      if (method !== undefined && method !== 'entities' && method !== 'files') throw new ConfigError(`${where}: backup.schedules[${i}].method must be entities or files`)
      if (method === 'files' && type !== 'full') throw new ConfigError(`${where}: backup.schedules[${i}]: a files backup is a full (type "full")`)
      const everyMs = num(entry, 'everyMs', 0, where)
      if (everyMs < 1000) throw new ConfigError(`${where}: backup.schedules[${i}].everyMs must be at least 1000`)
      const keepRaw = entry.keep
      let keep: Record<string, number> | undefined
      if (keepRaw !== undefined) {
        if (typeof keepRaw !== 'object' || keepRaw === null) throw new ConfigError(`${where}: backup.schedules[${i}].keep must be an object`)
        keep = {}
        for (const rule of Object.keys(keepRaw)) {
          if (!(KEEP_RULES as readonly string[]).includes(rule)) throw new ConfigError(`${where}: unknown keep rule "${rule}" (${KEEP_RULES.join(', ')})`)
          keep[rule] = num(keepRaw as Record<string, unknown>, rule, 0, where)
        }
      }
      return { type: type as (typeof BACKUP_TYPES)[number], ...(method !== undefined && { method }), everyMs, ...(keep && { keep: keep as Record<(typeof KEEP_RULES)[number], number> }) }
    }),
  }
}

const MODES: readonly NamespaceMode[] = ['two-way', 'pull-only', 'push-only']

const POLICIES: readonly ConflictPolicy[] = ['auto', 'strict']

function namespaceModes(raw: Record<string, unknown>, where: string): Record<string, NamespaceSettings> {
  const out: Record<string, NamespaceSettings> = {}
  for (const [ns, value] of Object.entries(raw)) {
    if (!isValidNamespace(ns)) throw new ConfigError(`${where}: "${ns}" is not a valid namespace`)
    const settings = (typeof value === 'object' && value !== null ? value : {}) as { mode?: unknown; conflicts?: unknown; indexes?: unknown }
    const mode = settings.mode ?? 'two-way'
    if (typeof mode !== 'string' || !MODES.includes(mode as NamespaceMode)) {
      throw new ConfigError(`${where}: namespaces.${ns}.mode must be one of ${MODES.join(', ')}`)
    }
    const conflicts = settings.conflicts ?? 'auto'
    if (typeof conflicts !== 'string' || !POLICIES.includes(conflicts as ConflictPolicy)) {
      throw new ConfigError(`${where}: namespaces.${ns}.conflicts must be one of ${POLICIES.join(', ')}`)
    }
    out[ns] = { mode: mode as NamespaceMode, conflicts: conflicts as ConflictPolicy, ...(settings.indexes !== undefined && { indexes: indexSettings(ns, settings.indexes, where) }) }
  }
  return out
}

/** `namespaces.<ns>.indexes`: checked as the API checks an index (INVALID_QUERY becomes CONFIG_INVALID). */
function indexSettings(ns: string, raw: unknown, where: string): Record<string, [string, 'asc' | 'desc'][]> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${where}: namespaces.${ns}.indexes must be an object of index name to fields`)
  const out: Record<string, [string, 'asc' | 'desc'][]> = {}
  for (const [name, fields] of Object.entries(raw)) {
    try {
      out[name] = parseIndexDefinition(name, fields).map((f) => [f.path, f.dir])
    } catch (cause) {
      throw new ConfigError(`${where}: namespaces.${ns}.indexes.${name}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    }
  }
  return out
}

function section(file: Record<string, unknown>, name: string, where: string): Record<string, unknown> {
  const value = file[name]
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${where}: "${name}" must be an object`)
  return value as Record<string, unknown>
}

function str(obj: Record<string, unknown>, key: string, fallback: string, where: string): string {
  const v = obj[key]
  if (v === undefined) return fallback
  if (typeof v !== 'string') throw new ConfigError(`${where}: "${key}" must be a string`)
  return v
}

/** `p2p.minConnections` and `p2p.maxConnections`: 1 <= min <= max. */
function watermarks(p2p: Record<string, unknown>, base: DaemonConfig['p2p'], where: string): { minConnections: number; maxConnections: number } {
  const minConnections = num(p2p, 'minConnections', base.minConnections, where)
  const maxConnections = num(p2p, 'maxConnections', Math.max(base.maxConnections, minConnections), where)
  if (minConnections < 1) throw new ConfigError(`${where}: "minConnections" must be at least 1`)
  if (maxConnections < minConnections) throw new ConfigError(`${where}: "maxConnections" must be at least "minConnections" (${minConnections})`)
  return { minConnections, maxConnections }
}

function num(obj: Record<string, unknown>, key: string, fallback: number, where: string): number {
  const v = obj[key]
  if (v === undefined) return fallback
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ConfigError(`${where}: "${key}" must be a non-negative integer`)
  return v
}

function atLeastOne(v: number, what: string): number {
  if (v < 1) throw new ConfigError(`${what} must be at least 1`)
  return v
}

function bool(obj: Record<string, unknown>, key: string, fallback: boolean, where: string): boolean {
  const v = obj[key]
  if (v === undefined) return fallback
  if (typeof v !== 'boolean') throw new ConfigError(`${where}: "${key}" must be true or false`)
  return v
}

function strList(obj: Record<string, unknown>, key: string, fallback: readonly string[], where: string): readonly string[] {
  const v = obj[key]
  if (v === undefined) return fallback
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ConfigError(`${where}: "${key}" must be a list of strings`)
  return v as string[]
}

function checkPort(port: number, what: string): number {
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new ConfigError(`${what} must be a port number (0-65535)`)
  return port
}
