import { chmod, readFile, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { LevelDatastore } from 'datastore-level'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { MeshTransport, peerIdOfAddress } from '../transport/index.ts'
import type { ApiContext } from './api/context.ts'
import { createApiServer } from './api/server.ts'
import { registerBackupMetrics } from './backup/metrics.ts'
import { BackupService } from './backup/service.ts'
import type { DaemonConfig } from './config.ts'
import { fsyncDir, initDataDir, readApiToken, type DataDirLayout } from './data-dir.ts'
import { DialFailures } from './dial-failures.ts'
import { DaemonError } from './errors.ts'
import { Lifecycle } from './lifecycle.ts'
import { DaemonMetrics } from './metrics.ts'
import { LevelKvStore } from './storage/level-kv-store.ts'
import { PeerBook } from './replication/peer-book.ts'
import { Replicator } from './replication/replicator.ts'
import { EntityStore } from './store/entity-store.ts'

/** Contents of `<data-dir>/daemon.json`, written once the daemon is ready. */
export interface DaemonInfo {
  readonly pid: number
  readonly peerId: string
  readonly nodeId: string
  readonly api: { readonly url: string; readonly socket: string }
  readonly listen: readonly string[]
}

/** A running meshsync node: store, API on TCP and on the Unix socket. */
export class Daemon {
  readonly info: DaemonInfo
  readonly layout: DataDirLayout
  readonly store: EntityStore
  readonly transport: MeshTransport
  readonly replicator: Replicator
  readonly backups: BackupService
  readonly #lifecycle: Lifecycle
  #stopping: Promise<void> | undefined

  private constructor(parts: {
    info: DaemonInfo
    layout: DataDirLayout
    store: EntityStore
    transport: MeshTransport
    replicator: Replicator
    backups: BackupService
    lifecycle: Lifecycle
  }) {
    this.info = parts.info
    this.layout = parts.layout
    this.store = parts.store
    this.transport = parts.transport
    this.replicator = parts.replicator
    this.backups = parts.backups
    this.#lifecycle = parts.lifecycle
  }

  /** Initializes the data dir if needed and starts every service; resolves when ready. */
  static async start(config: DaemonConfig, logger: Logger): Promise<Daemon> {
    const { layout, identity } = await initDataDir(config.dataDir, config.p2p.clusterKeyFile ? { clusterKeyFile: config.p2p.clusterKeyFile } : {}).catch((cause: unknown) => {
      if (cause instanceof DaemonError) throw cause
      // One line naming the dir and the system's reason (docs/cli.md, start).
      throw new DaemonError('DATA_DIR_UNUSABLE', `cannot use ${config.dataDir} as the data dir: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    })
    await refuseIfRunning(layout)
    const lifecycle = new Lifecycle(logger)
    const log = logger.child({ nodeId: identity.nodeId })
    const kv = new LevelKvStore(layout.db)
    const store = new EntityStore(
      { kv, nodeId: identity.nodeId, logger: log.child({ component: 'store' }) },
      {
        ...config.store,
        tombstoneGraceMs: config.gc.tombstoneGraceMs,
        modeOf: (ns) => config.namespaces[ns]?.mode ?? 'two-way',
        conflictPolicyOf: (ns) => config.namespaces[ns]?.conflicts ?? 'auto',
        // Declared indexes (docs/queries.md): the store builds new ones in the background.
        indexes: Object.fromEntries(
          Object.entries(config.namespaces).flatMap(([ns, n]) =>
            n.indexes ? [[ns, Object.fromEntries(Object.entries(n.indexes).map(([name, fields]) => [name, fields.map(([path, dir]) => ({ path, dir }))]))]] : [],
          ),
        ),
        maxScan: config.query.maxScan,
        liveBufferBytes: config.query.liveBufferBytes,
      },
    )
    await lifecycle.start('store', () => store.open(), () => store.close())
    const metrics = await lifecycle.start('metrics', async () => new DaemonMetrics({ store, dbDir: layout.db }), async (m) => m.close())
    const peers = new PeerBook(layout.peers)
    await peers.load()
    // The replicator dials every bootstrap address until it answers once, so that one that fails
    // says why (docs/operations.md, Dial failures); those that name their peer also go to libp2p's
    // bootstrap discovery (and the peer book).
    const named: string[] = []
    const seedAddrs = [...config.p2p.bootstrap]
    for (const addr of config.p2p.bootstrap) {
      const peerId = peerIdOfAddress(addr)
      if (peerId === undefined) continue
      named.push(addr)
      peers.remember(peerId, addr)
    }
    // Every member's signed record, kept so a restarted node finds the cluster without its bootstrap address (docs/sync-protocol.md, Membership and the overlay).
    const datastore = await lifecycle.start(
      'peer-store',
      async () => {
        const store = new LevelDatastore(layout.peerStore)
        await store.open()
        return store
      },
      (store) => store.close(),
    )
    const transport = new MeshTransport({
      datastore,
      minConnections: config.p2p.minConnections,
      maxConnections: config.p2p.maxConnections,
      privateKey: identity.privateKey,
      clusterKey: await readFile(layout.clusterKey),
      listen: config.p2p.listen,
      bootstrap: named,
      mdns: config.p2p.mdns,
      allowPeers: config.p2p.allowPeers,
      gossip: config.p2p.gossip,
      signGossip: config.p2p.signGossip,
      denyPeer: (peerId) => peers.isBanned(peerId),
      metricsRegistry: metrics.registry,
    })
    const replicator = new Replicator(
      { store, transport, peers, logger: log.child({ component: 'replicator' }) },
      { antiEntropyIntervalMs: config.p2p.antiEntropyIntervalMs, antiEntropyFanout: config.p2p.antiEntropyFanout, gossipPaceMs: config.p2p.gossipPaceMs, gossipPaceMaxMs: config.p2p.gossipPaceMaxMs, gcIntervalMs: config.gc.intervalMs, gcClockSkewMs: config.gc.clockSkewMs, seedAddrs },
    )
    const dialFailures = new DialFailures(log.child({ component: 'dial' }), config.p2p.bootstrap)
    transport.on('dial:failed', (error) => dialFailures.failed(error))
    transport.on('dial:succeeded', ({ target, peerId }) => dialFailures.answered(target, peerId))
    transport.on('handshake:mismatch', (o) => dialFailures.inboundMismatch(o))
    await lifecycle.start('transport', () => startTransport(transport, config.p2p.listen), () => transport.stop())
    await lifecycle.start('replicator', async () => replicator.start(), () => replicator.stop())
    metrics.watchReplication(replicator)
    metrics.watchOverlay(transport)
    const backups = new BackupService(
      { store, logger: log.child({ component: 'backup' }) },
      {
        target: config.backup.target,
        passphrase: config.backup.passphraseFile !== undefined ? await readPassphraseFile(config.backup.passphraseFile) : undefined,
        schedules: config.backup.schedules,
        clusterKeyFile: layout.clusterKey,
      },
    )
    registerBackupMetrics(metrics.registry, backups)
    await lifecycle.start('backups', async () => backups.start(), () => backups.stop())
    const ctx: ApiContext = {
      store,
      nodeId: identity.nodeId,
      peerId: identity.peerId.toString(),
      startedAt: Date.now(),
      listen: () => transport.listenAddrs(),
      peers: () => dialFailures.rows(replicator.peerViews()),
      gossip: () => ({ topic: transport.gossipTopic, signed: config.p2p.signGossip, peers: transport.gossipPeers().length }),
      metrics: () => metrics.render(),
      resync: (ns, from) => replicator.resyncNamespace(ns, from !== undefined ? { from } : {}),
      dial: async (addr) => {
        const peerId = await transport.dial(addr)
        peers.remember(peerId, addr)
        return peerId
      },
      backups,
    }
    const apiLog = log.child({ component: 'api' })
    const token = await readApiToken(layout)
    const tcp = await lifecycle.start(
      'api-tcp',
      async () => {
        const app = await createApiServer(ctx, { logger: apiLog, bodyLimit: config.api.bodyLimit, token })
        await listenTcp(app, config.api.host, config.api.port)
        return app
      },
      (app) => app.close(),
    )
    await lifecycle.start(
      'api-socket',
      async () => {
        const app = await createApiServer(ctx, { logger: apiLog, bodyLimit: config.api.bodyLimit })
        await rm(layout.socket, { force: true })
        await app.listen({ path: layout.socket })
        await chmod(layout.socket, 0o600)
        return app
      },
      async (app) => {
        await app.close()
        await rm(layout.socket, { force: true })
      },
    )
    const address = tcp.server.address()
    const port = typeof address === 'object' && address ? address.port : config.api.port
    const info: DaemonInfo = {
      pid: process.pid,
      peerId: identity.peerId.toString(),
      nodeId: identity.nodeId,
      api: { url: `http://${hostForUrl(config.api.host)}:${port}`, socket: layout.socket },
      listen: ctx.listen(),
    }
    await lifecycle.start(
      'daemon.json',
      async () => {
        await writeFile(layout.daemonJson, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 })
        await fsyncDir(layout.root)
      },
      () => rm(layout.daemonJson, { force: true }),
    )
    log.info({ api: info.api, peerId: info.peerId, listen: info.listen }, 'meshsync ready')
    return new Daemon({ info, layout, store, transport, replicator, backups, lifecycle })
  }

  /** Stops every service in reverse order (idempotent). */
  stop(): Promise<void> {
    this.#stopping ??= this.#lifecycle.stopAll()
    return this.#stopping
  }
}

async function listenTcp(app: FastifyInstance, host: string, port: number): Promise<void> {
  try {
    await app.listen({ host, port })
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') {
      throw new DaemonError('PORT_IN_USE', `API port ${host}:${port} is in use (pass --api-port 0 to pick a free one)`, { cause })
    }
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') throw new DaemonError('CONFIG_INVALID', `cannot listen on API address ${host}:${port}: ${unusableAddress(code)}`, { cause })
    throw cause
  }
}

/**
 * Starts libp2p; a listen address another process holds becomes one PORT_IN_USE line naming it
 * (docs/cli.md, start), instead of libp2p's multi-line error with a stack per address.
 */
async function startTransport(transport: MeshTransport, listen: readonly string[]): Promise<void> {
  try {
    await transport.start()
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause)
    // libp2p lists each failed address as "  <multiaddr>: Error: listen EADDRINUSE ...".
    const failed = (code: string): string[] => [...message.matchAll(new RegExp(`^\\s*(\\/\\S+): .*${code}`, 'gm'))].map((m) => m[1] as string)
    if (message.includes('EADDRINUSE')) {
      const taken = failed('EADDRINUSE')
      const addrs = taken.length > 0 ? taken : listen
      throw new DaemonError('PORT_IN_USE', `p2p listen address ${addrs.join(', ')} is in use (another daemon?); pass --listen with another port, or /ip4/0.0.0.0/tcp/0 for a free one`, { cause })
    }
    for (const code of ['EADDRNOTAVAIL', 'EACCES'] as const) {
      if (!message.includes(code)) continue
      const addrs = failed(code)
      throw new DaemonError('CONFIG_INVALID', `cannot listen on p2p address ${(addrs.length > 0 ? addrs : listen).join(', ')}: ${unusableAddress(code)}`, { cause })
    }
    throw cause
  }
}

/** Why a listen address cannot be used, for one line. */
function unusableAddress(code: 'EADDRNOTAVAIL' | 'EACCES'): string {
  return code === 'EADDRNOTAVAIL' ? 'not an address of this machine (EADDRNOTAVAIL)' : 'a port below 1024 needs privileges (EACCES)'
}

/** Refuses to start a second daemon on the same data dir (its socket answers). */
async function refuseIfRunning(layout: DataDirLayout): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const socket = connect(layout.socket)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
  if (alive) throw new DaemonError('ALREADY_RUNNING', `a daemon is already running on ${layout.root}`)
}

/** The first line of a passphrase file (CONFIG_INVALID when unreadable or empty). */
async function readPassphraseFile(file: string): Promise<string> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (cause) {
    throw new DaemonError('CONFIG_INVALID', `cannot read backup.passphraseFile ${file}`, { cause })
  }
  const line = text.split(/\r?\n/)[0] ?? ''
  if (line === '') throw new DaemonError('CONFIG_INVALID', `backup.passphraseFile ${file} is empty`)
  return line
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
