import { randomBytes } from 'node:crypto'
import { chmod, open, readFile, rename } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateClusterKey, generateIdentityKey, identityFromKey, type NodeIdentity } from '../transport/index.ts'
import { DaemonError } from './errors.ts'
import { makeDirs } from './make-dirs.ts'

/** Paths of everything a data dir holds (docs/architecture.md, Data directory). */
export interface DataDirLayout {
  readonly root: string
  readonly nodeKey: string
  readonly clusterKey: string
  readonly apiToken: string
  readonly db: string
  readonly socket: string
  readonly daemonJson: string
  readonly config: string
  /** Remembered peers and their addresses (for reconnecting after a restart). */
  readonly peers: string
  /** libp2p's peer store: the signed record of every cluster member known (for finding the cluster again after a restart). */
  readonly peerStore: string
}

/** Where each file of a data dir lives. */
export function dataDirLayout(root: string): DataDirLayout {
  return {
    root,
    nodeKey: join(root, 'node.key'),
    clusterKey: join(root, 'cluster.key'),
    apiToken: join(root, 'api-token'),
    db: join(root, 'db'),
    socket: join(root, 'api.sock'),
    daemonJson: join(root, 'daemon.json'),
    config: join(root, 'config.json'),
    peers: join(root, 'peers.json'),
    peerStore: join(root, 'peerstore'),
  }
}

/** What `init` made or found. */
export interface InitResult {
  readonly layout: DataDirLayout
  readonly identity: NodeIdentity
  readonly created: readonly string[]
}

/**
 * Makes the data dir usable: the directory (0700), the node key, the cluster key (a new one, or a
 * copy of `clusterKeyFile`), the API token; every secret 0600. Existing files are kept, so it is
 * safe to run on every start.
 */
export async function initDataDir(root: string, options: { clusterKeyFile?: string } = {}): Promise<InitResult> {
  const layout = dataDirLayout(root)
  await makeDirs(root, 0o700)
  const created: string[] = []
  if (await writeSecretIfAbsent(layout.nodeKey, await generateIdentityKey())) created.push(layout.nodeKey)
  const clusterKey = options.clusterKeyFile ? await readClusterKeyFile(options.clusterKeyFile) : generateClusterKey()
  if (await writeSecretIfAbsent(layout.clusterKey, clusterKey)) created.push(layout.clusterKey)
  else if (options.clusterKeyFile) {
    const current = await readFile(layout.clusterKey)
    if (!Buffer.from(clusterKey).equals(current)) {
      throw new DaemonError('CLUSTER_KEY_MISMATCH', `${layout.clusterKey} already holds a different cluster key`)
    }
  }
  const token = new TextEncoder().encode(randomBytes(32).toString('base64url'))
  if (await writeSecretIfAbsent(layout.apiToken, token)) created.push(layout.apiToken)
  const identity = identityFromKey(await readFile(layout.nodeKey))
  return { layout, identity, created }
}

/** Reads the API token of a data dir. */
export async function readApiToken(layout: DataDirLayout): Promise<string> {
  return (await readFile(layout.apiToken, 'utf8')).trim()
}

async function readClusterKeyFile(file: string): Promise<Uint8Array> {
  let bytes: Buffer
  try {
    bytes = await readFile(file)
  } catch (cause) {
    throw new DaemonError('CLUSTER_KEY_UNREADABLE', `cannot read cluster key ${file}`, { cause })
  }
  if (!bytes.toString('utf8').startsWith('/key/swarm/psk/1.0.0/')) {
    throw new DaemonError('CLUSTER_KEY_INVALID', `${file} is not a libp2p pre-shared key file`)
  }
  return bytes
}

/** Writes `bytes` to `file` (0600, fsynced, atomically) unless it exists. True when written. */
async function writeSecretIfAbsent(file: string, bytes: Uint8Array): Promise<boolean> {
  const tmp = `${file}.${process.pid}.tmp`
  let handle
  try {
    handle = await open(file, 'r')
    await handle.close()
    return false
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  handle = await open(tmp, 'w', 0o600)
  try {
    await handle.writeFile(bytes)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await chmod(tmp, 0o600)
  await rename(tmp, file)
  await fsyncDir(dirname(file))
  return true
}

/** fsyncs a directory so a rename in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
