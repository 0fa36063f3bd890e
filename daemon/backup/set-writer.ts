import { randomBytes } from 'node:crypto'
import type { VersionVector } from '../../crdt/index.ts'
import {
  BACKUP_FORMAT,
  DiffDigest,
  encodeChunk,
  IndexBuilder,
  RECORD_DIFF,
  sha256Hex,
  type BackupType,
  type ChunkRef,
  type Manifest,
  type NamespaceCounts,
  type ObjectRef,
} from './format.ts'
import type { BackupRepository, SetWriter } from './repository.ts'
import type { Sealer } from './seal.ts'

/** Uncompressed bytes of records per chunk, by default. */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
/** Chunks being compressed, encrypted and stored while the next one fills. */
const IN_FLIGHT = 2

/** What a set's manifest says beyond what writing its objects computes. */
export interface SetHead {
  readonly type: BackupType
  readonly parent: string | null
  readonly base: string | null
  readonly node: string
  readonly vv: VersionVector
  readonly feedSeq: number
  readonly snapshotAt: string
  readonly synthetic?: { readonly from: readonly string[] }
}

/** Entities at the set's snapshot (with its chain). */
export interface SetCounts {
  readonly namespaces: NamespaceCounts
  readonly entities: number
}

/**
 * Writes one set: records go into chunks (cut at `chunkBytes` of plaintext) that are sealed and
 * stored while the next chunk fills; the index follows, the manifest last
 * ({@link SetWriter.publish}). Records must come in key order.
 */
export class SetBuilder {
  readonly id: string
  readonly #writer: SetWriter
  readonly #sealer: Sealer
  readonly #chunkBytes: number
  readonly #now: () => number
  readonly #index = new IndexBuilder()
  readonly #chunks: ChunkRef[] = []
  readonly #pending: Promise<void>[] = []
  #kinds: number[] = []
  #metas: Uint8Array[] = []
  #states: Uint8Array[] = []
  #digest = new DiffDigest()
  #bytes = 0
  #diffs = 0

  private constructor(id: string, writer: SetWriter, sealer: Sealer, chunkBytes: number, now: () => number) {
    this.id = id
    this.#writer = writer
    this.#sealer = sealer
    this.#chunkBytes = chunkBytes
    this.#now = now
  }

  static async begin(repo: BackupRepository, sealer: Sealer, options: { now?: () => number; chunkBytes?: number } = {}): Promise<SetBuilder> {
    const now = options.now ?? Date.now
    const id = newSetId(now())
    return new SetBuilder(id, await repo.beginSet(id), sealer, options.chunkBytes ?? DEFAULT_CHUNK_BYTES, now)
  }

  /** Records added so far. */
  get records(): number {
    return this.#index.count
  }

  /** True once the chunk being filled is full: call {@link flush}. */
  get wantsFlush(): boolean {
    return this.#bytes >= this.#chunkBytes
  }

  /** Adds a record (a diff needs the {@link entityDigest} of the entity's state at this set). */
  add(key: string, kind: number, meta: Uint8Array, state: Uint8Array, digest?: Uint8Array): void {
    this.#index.add(key)
    this.#kinds.push(kind)
    this.#metas.push(meta)
    this.#states.push(state)
    this.#bytes += meta.length + state.length + 8
    if (kind === RECORD_DIFF) {
      if (!digest) throw new Error(`diff record of ${key} without a digest`)
      this.#digest.add(key, digest)
      this.#diffs++
    }
  }

  /** Cuts the current chunk and starts storing it; waits while too many are in flight. */
  async flush(): Promise<void> {
    if (this.#metas.length === 0) return
    const records = this.#metas.length
    const plain = encodeChunk({ kinds: Uint8Array.from(this.#kinds), metas: this.#metas, states: this.#states, ...(this.#digest.count > 0 && { diffDigest: this.#digest.digest() }) })
    this.#kinds = []
    this.#metas = []
    this.#states = []
    this.#digest = new DiffDigest()
    this.#bytes = 0
    await this.#addChunk(plain, records)
  }

  /**
   * Stores `plain` as the next chunk, as is (a files set's bytes: no records); waits while too
   * many are in flight. Resolves with `stored`, which settles once the chunk is stored and `plain`
   * is no longer read (the caller may then reuse it). Not mixed with {@link add} in one set.
   */
  async addBytes(plain: Uint8Array): Promise<{ stored: Promise<void> }> {
    if (this.#metas.length > 0) throw new Error('a set holds records or bytes, not both')
    return this.#addChunk(plain, 0)
  }

  /** Starts storing `plain` as the next chunk; waits while too many are in flight; resolves with its own storing. */
  async #addChunk(plain: Uint8Array, records: number): Promise<{ stored: Promise<void> }> {
    const n = this.#chunks.length
    const name = `c${String(n).padStart(6, '0')}`
    this.#chunks.push({ name, sha256: '', size: 0, records })
    const stored = this.#put(name, plain).then((ref) => {
      this.#chunks[n] = { ...ref, records }
    })
    stored.catch(() => undefined) // awaited by the caller or by publish; never an unhandled rejection
    this.#pending.push(stored)
    while (this.#pending.length > IN_FLIGHT) await this.#pending.shift()
    return { stored }
  }

  /**
   * Stores the last chunk and the index, then the manifest; resolves with the manifest. `method`:
   * the manifest's fields of a method other than entities (format.ts).
   */
  async publish(
    head: SetHead,
    counts: SetCounts,
    index: { resets?: readonly string[]; removed?: readonly string[] } = {},
    method: Pick<Manifest, 'method' | 'files'> = {},
  ): Promise<Manifest> {
    await this.flush()
    while (this.#pending.length > 0) await this.#pending.shift()
    const indexRef = await this.#put('index', this.#index.encode(index.resets ?? [], index.removed ?? []))
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      id: this.id,
      type: head.type,
      parent: head.parent,
      base: head.base,
      ...(head.synthetic && { synthetic: head.synthetic }),
      created: new Date(this.#now()).toISOString(),
      snapshotAt: head.snapshotAt,
      node: head.node,
      vv: head.vv,
      feedSeq: head.feedSeq,
      namespaces: counts.namespaces,
      entities: counts.entities,
      records: this.#index.count,
      diffs: this.#diffs,
      encrypted: this.#sealer.encrypted,
      index: indexRef,
      chunks: this.#chunks,
      ...method,
      bytes: indexRef.size + this.#chunks.reduce((n, c) => n + c.size, 0),
    }
    await this.#writer.publish(new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`))
    return manifest
  }

  /** Removes what was stored (after a failure). */
  async abort(): Promise<void> {
    await Promise.allSettled(this.#pending)
    await this.#writer.abort()
  }

  async #put(name: string, plain: Uint8Array): Promise<ObjectRef> {
    const stored = await this.#sealer.seal(plain, `${this.id}/${name}`)
    await this.#writer.put(name, stored)
    return { name, sha256: sha256Hex(stored), size: stored.length }
  }
}

/** Set ids sort by time: `20261126T130512.345Z-1a2b3c4d`. */
export function newSetId(t: number): string {
  const stamp = new Date(t).toISOString().replace(/[-:]/g, '')
  return `${stamp}-${randomBytes(4).toString('hex')}`
}
