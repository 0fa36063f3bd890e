/**
 * One OrbitDB 4.0 node of the `replicated-writes` baseline, run as a child process of the bench
 * (`fork`, IPC), from this folder so that its packages resolve from this folder's node_modules
 * (installed by the bench, never committed). The packages are loaded by computed specifiers, so the
 * repository type-checks without them; the few calls used are typed by hand below.
 *
 * Setup, as OrbitDB's own documentation has it for Node: libp2p (TCP, Noise, Yamux, identify,
 * gossipsub) under Helia (bitswap for blocks, libp2p routing only: nothing leaves the machine),
 * OrbitDB on top, a `keyvalue` database writable by anyone (IPFSAccessController write ['*']).
 * OrbitDB keeps its heads and index in LevelDB under `ORBITDB_DIR`; log entries are blocks in
 * Helia's default in-memory blockstore (cheaper than a disk one: in OrbitDB's favour).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

/** Bench → OrbitDB peer. */
export type OrbitCommand =
  | { readonly type: 'dial'; readonly addrs: readonly string[] }
  | { readonly type: 'create'; readonly name: string }
  | { readonly type: 'open'; readonly address: string }
  | { readonly type: 'subscribers' }
  | { readonly type: 'write'; readonly keys: readonly string[]; readonly values: readonly unknown[]; readonly concurrency: number }
  | { readonly type: 'await'; readonly hashes: readonly string[] }
  | { readonly type: 'read'; readonly keys: readonly string[] }
  | { readonly type: 'stop' }

/** OrbitDB peer → bench. */
export type OrbitReport =
  | { readonly type: 'ready'; readonly addrs: readonly string[]; readonly versions: Readonly<Record<string, string>> }
  | { readonly type: 'dialed' }
  | { readonly type: 'opened'; readonly address: string }
  | { readonly type: 'subscribers'; readonly count: number }
  | { readonly type: 'written'; readonly hashes: readonly string[]; readonly ms: number }
  | { readonly type: 'complete' }
  | { readonly type: 'values'; readonly values: readonly unknown[] }
  | { readonly type: 'error'; readonly error: string }

interface Libp2pNode {
  getMultiaddrs(): { toString(): string }[]
  dial(addr: unknown, options?: { signal?: AbortSignal }): Promise<unknown>
  services: { pubsub: { getSubscribers(topic: string): unknown[] } }
}
interface KeyValueDb {
  readonly address: string
  put(key: string, value: unknown): Promise<string>
  get(key: string): Promise<unknown>
  close(): Promise<void>
  readonly log: { has(hash: string): Promise<boolean> }
}
interface OrbitDB {
  open(address: string, options?: Record<string, unknown>): Promise<KeyValueDb>
  stop(): Promise<void>
}

type Module = Record<string, unknown>
const load = (specifier: string): Promise<Module> => import(specifier) as Promise<Module>
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the packages are untyped here on purpose (see above)
type AnyFn = (...args: any[]) => any
const fn = (module: Module, name: string): AnyFn => {
  const f = module[name]
  if (typeof f !== 'function') throw new Error(`${name} is not exported`)
  return f as AnyFn
}

function report(message: OrbitReport): void {
  process.send?.(message)
}

async function versionOf(name: string): Promise<string> {
  try {
    return (JSON.parse(await readFile(join(import.meta.dirname, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

async function main(): Promise<void> {
  const directory = process.env.ORBITDB_DIR
  if (!directory) throw new Error('ORBITDB_DIR is not set')
  const [libp2pMod, tcpMod, noiseMod, yamuxMod, identifyMod, gossipMod, heliaMod, brokersMod, routersMod, maMod, orbitMod] = await Promise.all(
    [
      'libp2p',
      '@libp2p/tcp',
      '@chainsafe/libp2p-noise',
      '@chainsafe/libp2p-yamux',
      '@libp2p/identify',
      '@libp2p/gossipsub',
      'helia',
      '@helia/block-brokers',
      '@helia/routers',
      '@multiformats/multiaddr',
      '@orbitdb/core',
    ].map(load),
  ) as Module[] as [Module, Module, Module, Module, Module, Module, Module, Module, Module, Module, Module]
  const libp2p = (await fn(libp2pMod, 'createLibp2p')({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [fn(tcpMod, 'tcp')()],
    connectionEncrypters: [fn(noiseMod, 'noise')()],
    streamMuxers: [fn(yamuxMod, 'yamux')()],
    connectionGater: { denyDialMultiaddr: () => false },
    services: {
      identify: fn(identifyMod, 'identify')(),
      pubsub: fn(gossipMod, 'gossipsub')({ allowPublishToZeroTopicPeers: true, emitSelf: false }),
    },
  })) as Libp2pNode
  const helia = (await fn(heliaMod, 'createHelia')({
    libp2p,
    blockBrokers: [fn(brokersMod, 'bitswap')()],
    routers: [fn(routersMod, 'libp2pRouting')(libp2p)],
  })) as { stop(): Promise<void> }
  const orbitdb = (await fn(orbitMod, 'createOrbitDB')({ ipfs: helia, directory })) as OrbitDB
  const accessController = fn(orbitMod, 'IPFSAccessController')
  const multiaddr = fn(maMod, 'multiaddr')
  let db: KeyValueDb | undefined
  const requireDb = (): KeyValueDb => {
    if (!db) throw new Error('no database open')
    return db
  }

  process.on('message', (message: OrbitCommand) => {
    void (async () => {
      switch (message.type) {
        case 'dial':
          for (const addr of message.addrs) await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) })
          report({ type: 'dialed' })
          break
        case 'create':
          db = await orbitdb.open(message.name, { type: 'keyvalue', AccessController: accessController({ write: ['*'] }) })
          report({ type: 'opened', address: db.address })
          break
        case 'open':
          db = await orbitdb.open(message.address)
          report({ type: 'opened', address: db.address })
          break
        case 'subscribers':
          report({ type: 'subscribers', count: db ? libp2p.services.pubsub.getSubscribers(db.address).length : 0 })
          break
        case 'write': {
          const target = requireDb()
          const hashes: string[] = new Array<string>(message.keys.length)
          let next = 0
          const t0 = performance.now()
          const loop = async (): Promise<void> => {
            while (next < message.keys.length) {
              const i = next++
              hashes[i] = await target.put(message.keys[i] as string, message.values[i])
            }
          }
          await Promise.all(Array.from({ length: message.concurrency }, loop))
          report({ type: 'written', hashes, ms: performance.now() - t0 })
          break
        }
        case 'await': {
          // Every entry is in this node's log (hashes of every node's writes): polled, 10 ms apart.
          const target = requireDb()
          let i = 0
          while (i < message.hashes.length) {
            if (await target.log.has(message.hashes[i] as string)) i++
            else await sleep(10)
          }
          report({ type: 'complete' })
          break
        }
        case 'read': {
          const target = requireDb()
          const values: unknown[] = []
          for (const key of message.keys) values.push(await target.get(key))
          report({ type: 'values', values })
          break
        }
        case 'stop':
          await db?.close()
          await orbitdb.stop()
          await helia.stop()
          process.exit(0)
      }
    })().catch((error: unknown) => report({ type: 'error', error: error instanceof Error ? (error.stack ?? error.message) : String(error) }))
  })
  process.on('disconnect', () => process.exit(0))
  const versions: Record<string, string> = {}
  for (const name of ['@orbitdb/core', 'helia', 'libp2p', '@libp2p/gossipsub']) versions[name] = await versionOf(name)
  report({ type: 'ready', addrs: libp2p.getMultiaddrs().map((ma) => ma.toString()), versions })
}

main().catch((error: unknown) => {
  report({ type: 'error', error: error instanceof Error ? (error.stack ?? error.message) : String(error) })
  process.exit(1)
})
