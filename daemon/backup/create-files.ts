import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { compareKeys } from '../storage/key-order.ts'
import type { FilesCheckpoint } from '../store/entity-store.ts'
import type { SnapshotView } from '../store/snapshot-view.ts'
import type { WriteOptions } from './create.ts'
import { BackupError } from './errors.ts'
import type { Manifest, NamespaceCounts, SetFile } from './format.ts'
import { acquireLock } from './lock.ts'
import type { BackupRepository } from './repository.ts'
import { openSealer } from './seal.ts'
import { SetBuilder } from './set-writer.ts'

/**
 * Most bytes of files per chunk, by default: two chunks are compressed at once (set-writer.ts),
 * so chunks smaller than an entity set's keep both cores busy on a small store; larger than
 * LevelDB's table files (2 MiB), so that each table sits in one chunk.
 */
export const FILES_CHUNK_BYTES = 4 * 1024 * 1024

/** Buffers a files backup fills in turn: one filling while the builder stores the others. */
const RING = 4

/** What a files backup reads: a node's store (EntityStore satisfies it). */
export interface FilesSource {
  readonly nodeId: string
  /** The store's files as of one moment, or undefined where it keeps none. */
  openCheckpoint(): Promise<FilesCheckpoint | undefined>
}

/**
 * A files backup: a full that holds the node's LevelDB files as of one moment (the store's
 * checkpoint: writes wait while LevelDB is closed, its files linked or copied aside, and
 * reopened), each file cut into chunks that are compressed, sealed and stored like any set's,
 * with the file's size and SHA-256 in the manifest. Taking and restoring one costs about what
 * copying the files costs, where an entity full reads and writes every entity through LevelDB.
 * The manifest holds the node vector, feed position and per-namespace counts of that moment, so
 * it lists, verifies, restores (into a new data dir: the files as they were; live or scoped:
 * read as a store) and is pruned like any full; incrementals and differentials are taken against
 * the node's entity sets only. Resolves with the manifest.
 */
export async function createFilesBackup(repo: BackupRepository, source: FilesSource, options: WriteOptions = {}): Promise<Manifest> {
  const now = options.now ?? Date.now
  const log = options.logger
  const lock = await acquireLock(repo, { owner: `backup create files (node ${source.nodeId})`, mode: 'exclusive', now, ...(log && { logger: log }), ...options.lock })
  try {
    const { sealer } = await openSealer(repo, { passphrase: options.passphrase, create: true, now, ...(options.kdf && { kdf: options.kdf }) })
    await repo.removeDebris()
    const checkpoint = await source.openCheckpoint()
    if (!checkpoint) throw new BackupError('FILES_BACKUP_UNSUPPORTED', 'this store keeps no database files to back up; take an entity backup')
    const snapshotAt = new Date(now()).toISOString()
    try {
      const builder = await SetBuilder.begin(repo, sealer, { now })
      try {
        const counts = await countsOf(checkpoint.view)
        const files: SetFile[] = []
        const cutter = new ChunkCutter(builder, options.chunkBytes ?? FILES_CHUNK_BYTES)
        for (const name of checkpoint.files) {
          files.push(await cutter.addFile(join(checkpoint.dir, name), name))
          options.onProgress?.({ phase: 'backup files', done: files.length, total: checkpoint.files.length })
        }
        await cutter.flush()
        const head = { type: 'full' as const, parent: null, base: null, node: source.nodeId, vv: checkpoint.view.vv, feedSeq: checkpoint.view.feedSeq, snapshotAt }
        return await builder.publish(head, counts, {}, { method: 'files', files })
      } catch (error) {
        await builder.abort()
        throw error
      }
    } finally {
      await checkpoint.view.close()
      await checkpoint.remove()
    }
  } finally {
    await lock.release()
  }
}

/** Cuts the files' bytes, one after another, into chunks of at most `size` bytes and stores them. */
class ChunkCutter {
  readonly #builder: SetBuilder
  readonly #size: number
  /**
   * Buffers to fill, reused once the chunk they held is stored: that spares an allocation (and
   * its share of garbage collection) per chunk. `#stored[i]` settles when buffer i is free.
   */
  readonly #buffers: Buffer[] = []
  readonly #stored: (Promise<void> | undefined)[] = []
  #next = 0
  #buffer: Buffer
  #filled = 0

  constructor(builder: SetBuilder, size: number) {
    this.#builder = builder
    this.#size = size
    this.#buffer = this.#take(0) as Buffer
  }

  /** Buffer `n` when it is free now (or new); undefined while its chunk is being stored. */
  #take(n: number): Buffer | undefined {
    if (this.#stored[n]) return undefined
    let buffer = this.#buffers[n]
    if (!buffer) this.#buffers[n] = buffer = Buffer.allocUnsafe(this.#size)
    return buffer
  }

  /**
   * Appends a file's bytes; resolves with the file's entry. A file that fits in a chunk but not
   * in what is left of the current one starts a new chunk, so that most files sit in one chunk
   * (a restore then checks each one without joining pieces).
   */
  async addFile(path: string, name: string): Promise<SetFile> {
    const handle = await open(path, 'r')
    try {
      const { size: length } = await handle.stat()
      if (length <= this.#size && this.#filled + length > this.#size) await this.flush()
      const hash = createHash('sha256')
      let size = 0
      for (;;) {
        const { bytesRead } = await handle.read(this.#buffer, this.#filled, this.#size - this.#filled, size)
        if (bytesRead === 0) break
        hash.update(this.#buffer.subarray(this.#filled, this.#filled + bytesRead))
        size += bytesRead
        this.#filled += bytesRead
        if (this.#filled === this.#size) await this.flush()
      }
      return { name, size, sha256: hash.digest('hex') }
    } finally {
      await handle.close()
    }
  }

  /** Stores what is buffered as a chunk; the next free buffer of the ring is filled meanwhile. */
  async flush(): Promise<void> {
    if (this.#filled === 0) return
    const chunk = this.#buffer.subarray(0, this.#filled)
    const used = this.#next
    const { stored } = await this.#builder.addBytes(chunk)
    // Free again once stored, or once storing failed (the failure reaches the caller through the builder).
    const free = (): void => {
      this.#stored[used] = undefined
    }
    this.#stored[used] = stored.then(free, free)
    this.#next = (used + 1) % RING
    while (this.#stored[this.#next]) await this.#stored[this.#next]
    this.#buffer = this.#take(this.#next) as Buffer
    this.#filled = 0
  }
}

/** Per-namespace counts at the checkpoint: live ones from the store's counts, deleted ones from its tombstones. */
async function countsOf(view: SnapshotView): Promise<{ namespaces: NamespaceCounts; entities: number }> {
  const deleted = await view.tombstoneCounts()
  const namespaces: Record<string, { live: number; deleted: number }> = {}
  let entities = 0
  for (const ns of [...new Set([...Object.keys(view.liveCounts), ...Object.keys(deleted)])].sort(compareKeys)) {
    const c = { live: view.liveCounts[ns] ?? 0, deleted: deleted[ns] ?? 0 }
    if (c.live + c.deleted === 0) continue
    namespaces[ns] = c
    entities += c.live + c.deleted
  }
  return { namespaces, entities }
}

