import type * as Y from 'yjs'
import { Lru } from './lru.ts'

/** Buckets of {@link EntityDocs}'s load numbers (a power of two). */
const LOAD_BUCKETS = 4096

/**
 * The cache of entity documents shared by the committer and the readers, with what a reader needs
 * to trust a cached document: which entities have uncommitted edits in theirs (a commit is in
 * flight), and per bucket of entity keys the number of the last group that held one of them.
 */
export class EntityDocs extends Lru<string, Y.Doc> {
  /** Entities with uncommitted edits in their cached Y.Doc (a commit is in flight). */
  readonly #dirty = new Set<string>()
  /** Groups written so far (and wipes and purges): numbers {@link #loadedIn}. */
  #loads = 0
  /**
   * Per bucket of entity keys (a hash), the number of the last group written (or failed) that
   * held one of them, or of the last wipe or purge (every bucket): a reader that finds its
   * entity's bucket unchanged across its reads knows no commit touched the entity meanwhile.
   */
  readonly #loadedIn = new Float64Array(LOAD_BUCKETS)
  #commitDone: PromiseWithResolvers<void> | undefined

  /** A group loaded the entity: its cached document may take uncommitted edits. */
  loading(key: string): void {
    this.#dirty.add(key)
  }

  /** Forgets the entity's document and its uncommitted edits (a group that will not be written). */
  discard(key: string): void {
    this.delete(key)
    this.#dirty.delete(key)
  }

  /** The group holding `keys` ended (written or failed): readers waiting on them go on. */
  groupEnded(keys: Iterable<string>): void {
    const done = ++this.#loads
    for (const key of keys) {
      this.#dirty.delete(key)
      this.#loadedIn[loadBucket(key)] = done
    }
    this.#commitDone?.resolve()
    this.#commitDone = undefined
  }

  /** A wipe or a purge ended: it may have touched any entity. */
  allEnded(): void {
    this.#loadedIn.fill(++this.#loads)
  }

  /** True while a commit in flight holds uncommitted edits in the entity's document. */
  isDirty(key: string): boolean {
    return this.#dirty.has(key)
  }

  /** Resolves when the next group ends (see {@link groupEnded}). */
  nextGroupEnd(): Promise<void> {
    this.#commitDone ??= Promise.withResolvers()
    return this.#commitDone.promise
  }

  /** The number of the last group that may have touched the entity (see {@link groupEnded}). */
  loadNumber(key: string): number {
    return this.#loadedIn[loadBucket(key)] as number
  }
}

/** The bucket of an entity key (FNV-1a). */
function loadBucket(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return (h >>> 0) & (LOAD_BUCKETS - 1)
}
