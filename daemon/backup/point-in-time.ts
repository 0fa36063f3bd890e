/**
 * Reading entities as a backup holds them, without restoring anything (docs/backups.md, "Reading
 * a backup without restoring"): one entity, one of its texts, or a page of a namespace, of a set
 * named by id, prefix, `latest` or a time (the newest set taken at or before it).
 *
 * An entity set is read where it lies: the indexes of its chain, and only the chunks holding the
 * entities asked for. A files set holds the node's database files, which are read as a database:
 * the set is unpacked into a scratch directory, kept for later reads of the same set ({@link
 * UnpackedSets}: one set at a time, removed once unused for a while, when another files set is
 * read, and on stop).
 */
import { createHash } from 'node:crypto'
import { assertEntityId, assertNamespace, assertTextName, createEntityDoc, readText, type VersionVector } from '../../crdt/index.ts'
import { EntityNotFoundError, RequestError } from '../errors.ts'
import type { EntityView } from '../store/types.ts'
import { viewOf } from '../store/views.ts'
import { BackupError, corrupt } from './errors.ts'
import { Unpacked } from './files-read.ts'
import { parseMeta, type Manifest } from './format.ts'
import { materialize, methodOf } from './methods.ts'
import { checkTarget } from './preflight.ts'
import { bySnapshot, chainOf, listManifests, loadManifest, resolveSetId, type RestoredEntity, type Scope } from './read.ts'
import type { BackupRepository } from './repository.ts'
import { openSealer, type Sealer } from './seal.ts'
import { scopeRange } from './scope.ts'
import { openRepository, type OpenRepositoryOptions } from './target.ts'
import { compareKeys } from '../storage/key-order.ts'
import { splitEntityKey } from '../store/snapshot-view.ts'

/** Which set to read, and where. */
export interface PointInTimeOptions {
  /** A set id, a unique id prefix, `latest`, or an ISO 8601 time. */
  readonly at: string
  readonly target: string
  readonly passphrase?: string | undefined
}

/** The set a read was answered from. */
export interface SetRef {
  readonly id: string
  readonly snapshotAt: string
  readonly node: string
}

/** How long an opened repository key and an unpacked files set are kept after their last use. */
export const KEEP_MS = 5 * 60_000
/** Most repository keys (derived from passphrases) kept at once. */
const SEALERS_KEPT = 4
/** `at` values read as a time rather than a set id. */
const TIME = /^\d{4}-\d{2}-\d{2}T/

export class PointInTimeReader {
  readonly #repositoryOptions: OpenRepositoryOptions | undefined
  readonly #now: () => number
  readonly #sealers = new Map<string, { sealer: Sealer; used: number }>()
  readonly #unpacked: UnpackedSets

  constructor(options: { repositoryOptions?: OpenRepositoryOptions | undefined; now?: () => number; keepMs?: number } = {}) {
    this.#repositoryOptions = options.repositoryOptions
    this.#now = options.now ?? Date.now
    this.#unpacked = new UnpackedSets(options.keepMs ?? KEEP_MS)
  }

  /** The entity as the set holds it (deleted ones too), or undefined when the set does not hold it. */
  async entity(ns: string, id: string, options: PointInTimeOptions): Promise<{ entity: RestoredEntity | undefined; set: SetRef }> {
    const { value, set } = await this.#withSet(options, async (read) => (await read({ ns, id }, 1))[0])
    return { entity: value, set }
  }

  /** A page of the entities of `ns` the set holds, in id order (deleted ones too); `more` when others follow. */
  async list(ns: string, page: { prefix?: string | undefined; after?: string | undefined; limit: number }, options: PointInTimeOptions): Promise<{ entities: RestoredEntity[]; more: boolean; set: SetRef }> {
    const { value, set } = await this.#withSet(options, async (read) => {
      const entities: RestoredEntity[] = []
      let after = page.after
      // Deleted entities are skipped by the caller; read on until the page is full or the namespace ends.
      for (;;) {
        const got = await read({ ns, prefix: page.prefix, after }, page.limit + 1)
        entities.push(...got.filter((e) => !e.meta.deleted))
        if (entities.length > page.limit || got.length <= page.limit) break
        after = got.at(-1)?.id
      }
      return entities
    })
    return { entities: value.slice(0, page.limit), more: value.length > page.limit, set }
  }

  /** The entity as the set holds it, as the API shows an entity; ENTITY_NOT_FOUND when it is not there or deleted. */
  async entityView(ns: string, id: string, options: PointInTimeOptions): Promise<EntityView & { backup: SetRef }> {
    assertNamespace(ns)
    assertEntityId(id)
    const { entity, set } = await this.entity(ns, id, options)
    if (!entity || entity.meta.deleted) throw notInBackup(ns, id, set)
    return { ...viewOf(ns, id, entity.meta), backup: set }
  }

  /** A text of the entity as the set holds it. */
  async textView(ns: string, id: string, name: string, options: PointInTimeOptions): Promise<{ text: string; version: VersionVector; backup: SetRef }> {
    assertNamespace(ns)
    assertEntityId(id)
    assertTextName(name)
    const { entity, set } = await this.entity(ns, id, options)
    if (!entity || entity.meta.deleted) throw notInBackup(ns, id, set)
    return { text: readText(entity.doc ?? createEntityDoc(entity.state), name), version: entity.meta.vv, backup: set }
  }

  /** A page of the live entities of `ns` the set holds, as `GET /v1/ns/:ns/entities` answers. */
  async listView(ns: string, page: { prefix?: string | undefined; after?: string | undefined; limit: number }, options: PointInTimeOptions): Promise<{ items: EntityView[]; next?: string; backup: SetRef }> {
    assertNamespace(ns)
    const { entities, more, set } = await this.list(ns, page, options)
    const items = entities.map((e) => viewOf(e.ns, e.id, e.meta))
    const last = items.at(-1)
    return { items, ...(more && last && { next: last.id }), backup: set }
  }

  /** Forgets the kept keys and removes the unpacked set. */
  async close(): Promise<void> {
    this.#sealers.clear()
    await this.#unpacked.close()
  }

  async #withSet<T>(
    options: PointInTimeOptions,
    body: (read: (scope: Scope, limit: number) => Promise<RestoredEntity[]>) => Promise<T>,
  ): Promise<{ value: T; set: SetRef }> {
    await checkTarget(options.target, 'read')
    const repo = openRepository(options.target, this.#repositoryOptions)
    try {
      const manifest = await this.#resolve(repo, options.at)
      const sealer = await this.#sealer(repo, options.passphrase)
      const set = { id: manifest.id, snapshotAt: manifest.snapshotAt, node: manifest.node }
      let read: (scope: Scope, limit: number) => Promise<RestoredEntity[]>
      if (methodOf(manifest).name === 'files') {
        read = (scope, limit) => this.#unpacked.read(repo, sealer, manifest, scope, limit)
      } else {
        const chain = await chainOf(repo, manifest)
        read = async (scope, limit) => {
          const out: RestoredEntity[] = []
          for await (const e of materialize(repo, sealer, chain, scope)) {
            out.push(e)
            if (out.length >= limit) break
          }
          return out
        }
      }
      return { value: await body(read), set }
    } finally {
      await repo.close()
    }
  }

  /** The set `at` names; a time names the newest set taken at or before it (NO_BACKUP_BEFORE when none was). */
  async #resolve(repo: BackupRepository, at: string): Promise<Manifest> {
    if (!TIME.test(at)) return loadManifest(repo, await resolveSetId(repo, at))
    const time = Date.parse(at)
    if (Number.isNaN(time)) throw new RequestError('INVALID_QUERY', `at: not a time: ${at} (an ISO 8601 time such as 2026-12-01T12:00:00Z)`)
    const { sets } = await listManifests(repo)
    const before = sets.filter((m) => Date.parse(m.snapshotAt) <= time).sort(bySnapshot).at(-1)
    if (!before) throw new BackupError('NO_BACKUP_BEFORE', `no backup in ${repo.location} was taken at or before ${new Date(time).toISOString()}`)
    return before
  }

  /**
   * The repository's sealer. The key a passphrase derives (scrypt, made to be slow) is kept for
   * {@link KEEP_MS} after its last use, by repository config and passphrase, so that a series of
   * reads derives it once; a wrong passphrase is never kept.
   */
  async #sealer(repo: BackupRepository, passphrase: string | undefined): Promise<Sealer> {
    const now = this.#now()
    for (const [key, kept] of this.#sealers) if (now - kept.used > KEEP_MS) this.#sealers.delete(key)
    const config = (await repo.get('config.json')) ?? new Uint8Array(0)
    const key = createHash('sha256').update(repo.location).update('\0').update(config).update('\0').update(passphrase ?? '\0none').digest('hex')
    const kept = this.#sealers.get(key)
    if (kept) {
      kept.used = now
      return kept.sealer
    }
    const { sealer } = await openSealer(repo, { passphrase })
    this.#sealers.set(key, { sealer, used: now })
    while (this.#sealers.size > SEALERS_KEPT) this.#sealers.delete(this.#sealers.keys().next().value as string)
    return sealer
  }
}

function notInBackup(ns: string, id: string, set: SetRef): EntityNotFoundError {
  return new EntityNotFoundError(ns, id, `in backup ${set.id} (taken ${set.snapshotAt})`)
}

/** An unpacked files set and the reads using it. */
interface Slot {
  readonly key: string
  readonly unpacked: Promise<Unpacked>
  users: number
  retired: boolean
  timer?: NodeJS.Timeout
  /** Set once retired and unused: the removal of its directory. */
  closed?: Promise<void>
}

/**
 * One files set unpacked into a scratch directory at a time, shared by the reads of that set:
 * removed {@link KEEP_MS} after its last read ends, when a read asks for another set (once the
 * reads using it end), and on close.
 */
class UnpackedSets {
  readonly #keepMs: number
  #slot: Slot | undefined

  constructor(keepMs: number) {
    this.#keepMs = keepMs
  }

  async read(repo: BackupRepository, sealer: Sealer, m: Manifest, scope: Scope, limit: number): Promise<RestoredEntity[]> {
    const key = `${repo.location}\0${m.id}`
    let slot = this.#slot
    if (slot?.key !== key) {
      if (slot) this.#retire(slot)
      const unpacked = Unpacked.open(repo, sealer, m)
      unpacked.catch(() => undefined) // awaited below; a failed unpack is not kept
      slot = { key, unpacked, users: 0, retired: false }
      this.#slot = slot
    }
    clearTimeout(slot.timer)
    slot.users++
    try {
      return await readUnpacked(await slot.unpacked, m, scope, limit)
    } catch (error) {
      if (this.#slot === slot) this.#retire(slot)
      throw error
    } finally {
      slot.users--
      this.#release(slot)
    }
  }

  /** Retires the set; resolves once it is removed, or at once when a read still uses it (the read's end removes it). */
  async close(): Promise<void> {
    const slot = this.#slot
    if (!slot) return
    this.#retire(slot)
    await slot.closed
  }

  #retire(slot: Slot): void {
    slot.retired = true
    if (this.#slot === slot) this.#slot = undefined
    this.#release(slot)
  }

  #release(slot: Slot): void {
    if (slot.users > 0) return
    if (slot.retired) {
      clearTimeout(slot.timer)
      slot.closed ??= slot.unpacked.then((u) => u.close()).catch(() => undefined)
      return
    }
    clearTimeout(slot.timer)
    slot.timer = setTimeout(() => this.#retire(slot), this.#keepMs)
    slot.timer.unref()
  }
}

/** The entities of `scope` in an unpacked files set, in key order, at most `limit`. */
async function readUnpacked(unpacked: Unpacked, m: Manifest, scope: Scope, limit: number): Promise<RestoredEntity[]> {
  const toEntity = (key: string, meta: Uint8Array, state: Uint8Array): RestoredEntity => {
    const { ns, id } = splitEntityKey(key)
    try {
      return { ns, id, meta: parseMeta(meta), metaBytes: meta, state }
    } catch (cause) {
      throw corrupt(m.id, 'manifest.json', `${ns}/${id}: ${(cause as Error).message}`, cause)
    }
  }
  if (scope.ns !== undefined && scope.id !== undefined) {
    const [raw] = await unpacked.view.rawEntitiesOf([`${scope.ns}\0${scope.id}`])
    return raw ? [toEntity(raw.key, raw.meta, raw.state)] : []
  }
  const out: RestoredEntity[] = []
  const [from, to] = scopeRange(scope)
  for await (const batch of unpacked.view.rawEntities({ ...(scope.ns !== undefined && { ns: scope.ns }), ...(from !== undefined && { from }) })) {
    for (const e of batch) {
      if (to !== undefined && compareKeys(e.key, to) >= 0) return out
      out.push(toEntity(e.key, e.meta, e.state))
      if (out.length >= limit) return out
    }
  }
  return out
}
