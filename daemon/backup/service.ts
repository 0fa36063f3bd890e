import { resolve } from 'node:path'
import type { Logger } from 'pino'
import type { Progress, WriteOptions } from './create.ts'
import { BackupError } from './errors.ts'
import type { BackupType, Manifest } from './format.ts'
import { withLock } from './lock.ts'
import { prune, synthesizeFull, verifyBackup, type PruneResult, type RetentionPolicy } from './maintain.ts'
import type { MethodSource } from './method.ts'
import { backupMethod, DEFAULT_METHOD, methodOf, type BackupMethodName } from './methods.ts'
import { listManifests, loadManifest, resolveSetId, type VerifyResult } from './read.ts'
import type { BackupRepository } from './repository.ts'
import { restoreIntoDir, restoreIntoLive, type LiveStore, type RestoreDirResult, type RestoreLiveResult } from './restore.ts'
import { PointInTimeReader, type PointInTimeOptions } from './point-in-time.ts'
import { openSealer, type KdfParams } from './seal.ts'
import { OperationRunner, type OperationContext, type OperationKind, type OperationProgress } from './operations.ts'
import { checkTarget } from './preflight.ts'
import { openRepository, type OpenRepositoryOptions } from './target.ts'

/** A set as list and create report it. */
export interface BackupSummary {
  readonly id: string
  readonly type: BackupType
  readonly parent: string | null
  readonly base: string | null
  readonly synthetic: boolean
  /** How the set holds the data: entity records, or the node's database files (a full). */
  readonly method: BackupMethodName
  readonly created: string
  readonly snapshotAt: string
  readonly node: string
  readonly entities: number
  readonly records: number
  readonly chunks: number
  readonly bytes: number
  readonly encrypted: boolean
  /** Records stored as diffs against the parent (the others are whole entities). */
  readonly diffs: number
  readonly namespaces: Manifest['namespaces']
  readonly vv: Manifest['vv']
}

export function summarize(m: Manifest): BackupSummary {
  return {
    id: m.id,
    type: m.type,
    parent: m.parent,
    base: m.base,
    synthetic: m.synthetic !== undefined,
    method: methodOf(m).name,
    created: m.created,
    snapshotAt: m.snapshotAt,
    node: m.node,
    entities: m.entities,
    records: m.records,
    chunks: m.chunks.length,
    bytes: m.bytes,
    encrypted: m.encrypted,
    diffs: m.diffs,
    namespaces: m.namespaces,
    vv: m.vv,
  }
}

/** A scheduled backup (config `backup.schedules`). */
export interface BackupSchedule {
  readonly type: BackupType
  /** `files`: a files backup (type full only; create-files.ts). Default: entities. */
  readonly method?: BackupMethodName
  /** Period in ms. */
  readonly everyMs: number
  /** Prune after each run with this policy (optional). */
  readonly keep?: RetentionPolicy
}

/** Where and how a node backs up (config `backup`). */
export interface BackupSettings {
  /** Default repository (a directory or s3://bucket/prefix). */
  readonly target?: string | undefined
  /** The repository passphrase (read from `passphraseFile` at start). */
  readonly passphrase?: string | undefined
  readonly schedules?: readonly BackupSchedule[]
  readonly kdf?: KdfParams
  readonly lock?: WriteOptions['lock']
  readonly now?: () => number
  readonly repositoryOptions?: OpenRepositoryOptions
  /** Cluster key file copied into a data dir restored through the API. */
  readonly clusterKeyFile?: string
  /** Deadline of one operation (default 6 hours; docs/backups.md, Long operations). */
  readonly deadlineMs?: number
}

/** Outcome of the last backup, for `/v1/status` and the metrics. */
export interface BackupStatus {
  readonly target: string | null
  readonly running: boolean
  readonly lastSuccess: { readonly id: string; readonly at: string; readonly type: BackupType; readonly method: BackupMethodName; readonly bytes: number; readonly entities: number; readonly durationMs: number } | null
  readonly lastFailure: { readonly at: string; readonly code: string; readonly message: string } | null
  /** Age in ms of the last successful backup's snapshot. */
  readonly ageMs: number | null
  /** The backup, restore, verify, synthesize or prune running now, with its progress; null when none. */
  readonly operation: OperationProgress | null
}

/** What the service needs from the daemon. */
export interface BackupServiceComponents {
  readonly store: MethodSource & LiveStore
  readonly logger: Logger
}

/** Per-call settings every operation takes. */
export interface CallOptions {
  readonly target?: string | undefined
  readonly passphrase?: string | undefined
  readonly onProgress?: (p: Progress) => void
}

/**
 * Backups of one node: create, list, verify, restore, synthesize, prune, and the schedules.
 * Operations that write to a repository run one at a time in this process, and under the
 * repository's exclusive lock against other processes.
 */
export class BackupService {
  readonly #store: MethodSource & LiveStore
  readonly #log: Logger
  readonly #settings: BackupSettings
  readonly #runner: OperationRunner
  readonly #pointInTime: PointInTimeReader
  #lastSuccess: BackupStatus['lastSuccess'] = null
  #lastFailure: BackupStatus['lastFailure'] = null
  #timers: NodeJS.Timeout[] = []

  constructor(components: BackupServiceComponents, settings: BackupSettings = {}) {
    this.#store = components.store
    this.#log = components.logger
    this.#settings = settings
    this.#pointInTime = new PointInTimeReader({ repositoryOptions: settings.repositoryOptions, ...(settings.now && { now: settings.now }) })
    this.#runner = new OperationRunner({ ...(settings.deadlineMs !== undefined && { deadlineMs: settings.deadlineMs }), ...(settings.now && { now: settings.now }) })
  }

  /** Starts the schedules (idempotent). */
  start(): void {
    if (this.#timers.length > 0) return
    for (const schedule of this.#settings.schedules ?? []) {
      let busy = false
      const timer = setInterval(() => {
        if (busy) return // the previous run is still going: skip this tick
        busy = true
        this.create({ type: schedule.type, ...(schedule.method && { method: schedule.method }) })
          .then(async () => {
            if (schedule.keep) await this.prune(schedule.keep)
          })
          .catch((err: unknown) => {
            // Another operation (one asked for through the API) was running: this tick is skipped.
            if (err instanceof BackupError && err.code === 'BACKUP_BUSY') this.#log.warn({ schedule: schedule.type }, `scheduled backup skipped: ${err.message}`)
            else this.#log.error({ err, schedule: schedule.type }, 'scheduled backup failed')
          })
          .finally(() => (busy = false))
      }, schedule.everyMs)
      timer.unref()
      this.#timers.push(timer)
    }
  }

  /** Stops the schedules and aborts the running operation (idempotent); new ones are refused. */
  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    await this.#runner.stop()
    await this.#pointInTime.close()
  }

  /** Aborted operations still stuck in a call that never returned (operations.ts). */
  get abandoned(): number {
    return this.#runner.abandoned
  }

  status(): BackupStatus {
    const now = (this.#settings.now ?? Date.now)()
    return {
      target: this.#settings.target ?? null,
      running: this.#runner.busy,
      lastSuccess: this.#lastSuccess,
      lastFailure: this.#lastFailure,
      ageMs: this.#lastSuccess ? now - Date.parse(this.#lastSuccess.at) : null,
      operation: this.#runner.progress(),
    }
  }

  /** Takes a backup of the node: of its entities (any type), or of its database files (a full). */
  async create(input: CallOptions & { type: BackupType; method?: BackupMethodName }): Promise<BackupSummary & { target: string }> {
    const method = backupMethod(input.method ?? DEFAULT_METHOD)
    method.checkType(input.type)
    try {
      await this.#check(input.target, 'write')
    } catch (error) {
      // A target that cannot take the backup is a failed backup (a schedule's alert fires); a
      // busy node is not: the caller retries.
      if (!(error instanceof BackupError && error.code === 'BACKUP_BUSY')) this.#failed(error)
      throw error
    }
    return this.#exclusive('backup', async (job) => {
      const started = Date.now()
      try {
        if (input.type === 'full') this.#runner.estimateTotal(this.#liveEntities())
        const manifest = await this.#withRepo(input.target, job, (repo) => method.create(repo, this.#store, input.type, this.#writeOptions(input, job)))
        const summary = summarize(manifest)
        this.#lastSuccess = { id: summary.id, at: summary.snapshotAt, type: summary.type, method: summary.method, bytes: summary.bytes, entities: summary.entities, durationMs: Date.now() - started }
        this.#log.info({ backup: summary.id, type: summary.type, method: summary.method, entities: summary.entities, bytes: summary.bytes }, 'backup created')
        return { ...summary, target: this.#targetOf(input.target) }
      } catch (error) {
        this.#failed(error)
        this.#log.error({ err: error }, 'backup failed')
        throw error
      }
    })
  }

  #failed(error: unknown): void {
    const code = error instanceof BackupError ? error.code : 'INTERNAL'
    this.#lastFailure = { at: new Date().toISOString(), code, message: error instanceof Error ? error.message : String(error) }
  }

  /** The sets of a repository, oldest first. */
  async list(input: CallOptions = {}): Promise<{ target: string; sets: BackupSummary[]; broken: { id: string; code: string; message: string }[] }> {
    // Reading the list is short and takes no lock: it runs next to a long operation.
    await checkTarget(this.#targetOf(input.target), 'read')
    return this.#withRepo(input.target, undefined, async (repo) => {
      const { sets, broken } = await listManifests(repo)
      return { target: repo.location, sets: sets.map(summarize), broken }
    })
  }

  /** Reads back every object of a set and its chain (under a shared lock); BACKUP_CORRUPT naming the first bad one. */
  async verify(ref: string, input: CallOptions = {}): Promise<VerifyResult> {
    await this.#check(input.target, 'read')
    return this.#exclusive('verify', (job) => this.#withRepo(input.target, job, async (repo) => {
      const manifest = await loadManifest(repo, await resolveSetId(repo, ref))
      const { passphrase, now, lock, logger, onProgress } = this.#writeOptions(input, job)
      return verifyBackup(repo, manifest, {
        passphrase,
        ...(now && { now }),
        ...(lock && { lock }),
        ...(logger && { logger }),
        ...(onProgress && { onProgress: (p: { done: number; total: number }) => onProgress({ phase: 'verify', done: p.done, total: p.total }) }),
      })
    }))
  }

  /** Restores a set (or one namespace or entity of it) into the live node, or into a new data dir. */
  async restore(
    input: CallOptions & { backup: string; ns?: string | undefined; id?: string | undefined; into?: string | undefined },
  ): Promise<RestoreLiveResult | RestoreDirResult> {
    if (input.id !== undefined && input.ns === undefined) throw new BackupError('INVALID_TARGET', 'restoring one entity needs its namespace (ns)')
    await this.#check(input.target, 'read')
    if (input.into !== undefined) await checkTarget(input.into, 'write')
    return this.#exclusive('restore', (job) =>
      this.#withRepo(input.target, job, async (repo) => {
        const manifest = await loadManifest(repo, await resolveSetId(repo, input.backup))
        const lock = { owner: `restore ${manifest.id}`, mode: 'shared' as const, ...(this.#settings.now && { now: this.#settings.now }), logger: this.#log, ...this.#settings.lock }
        return withLock(repo, lock, async () => {
          const { sealer } = await openSealer(repo, { passphrase: this.#passphrase(input) })
          const scope = { ns: input.ns, id: input.id }
          const { onProgress } = this.#writeOptions(input, job)
          if (input.into !== undefined) {
            return restoreIntoDir(repo, sealer, manifest, resolve(input.into), {
              logger: this.#log,
              scope,
              clusterKeyFile: this.#settings.clusterKeyFile,
              ...(onProgress && { onProgress }),
            })
          }
          const result = await restoreIntoLive(repo, sealer, manifest, this.#store, { scope, ...(onProgress && { onProgress }) })
          this.#log.info({ ...result }, 'restored into the live node')
          return result
        })
      }),
    )
  }

  /**
   * Reads of entities as a backup holds them, without restoring anything (docs/backups.md,
   * "Reading a backup without restoring"): short reads, not long operations, so they run next to one.
   */
  entityAt(ns: string, id: string, input: CallOptions & { at: string }): ReturnType<PointInTimeReader['entityView']> {
    return this.#pointInTime.entityView(ns, id, this.#readOptions(input))
  }

  textAt(ns: string, id: string, name: string, input: CallOptions & { at: string }): ReturnType<PointInTimeReader['textView']> {
    return this.#pointInTime.textView(ns, id, name, this.#readOptions(input))
  }

  listAt(ns: string, page: { prefix?: string | undefined; after?: string | undefined; limit: number }, input: CallOptions & { at: string }): ReturnType<PointInTimeReader['listView']> {
    return this.#pointInTime.listView(ns, page, this.#readOptions(input))
  }

  #readOptions(input: CallOptions & { at: string }): PointInTimeOptions {
    return { at: input.at, target: this.#targetOf(input.target), passphrase: this.#passphrase(input) }
  }

  /** A new full set merged offline from a set's chain. */
  async synthesize(ref: string, input: CallOptions = {}): Promise<BackupSummary> {
    await this.#check(input.target, 'write')
    return this.#exclusive('synthesize', (job) =>
      this.#withRepo(input.target, job, async (repo) => summarize(await synthesizeFull(repo, await loadManifest(repo, await resolveSetId(repo, ref)), this.#writeOptions(input, job)))),
    )
  }

  /** Applies a retention policy. */
  async prune(policy: RetentionPolicy, input: CallOptions & { dryRun?: boolean } = {}): Promise<PruneResult> {
    await this.#check(input.target, input.dryRun ? 'read' : 'write')
    return this.#exclusive('prune', (job) => this.#withRepo(input.target, job, (repo) => prune(repo, policy, { ...this.#writeOptions(input, job), ...(input.dryRun && { dryRun: true }) })))
  }

  /** The settings of one operation; its progress goes to the runner (status, metrics) and the caller. */
  #writeOptions(input: CallOptions, job?: OperationContext): WriteOptions {
    const s = this.#settings
    const report = input.onProgress
    const onProgress = job
      ? (p: Progress): void => {
          job.progress(p)
          report?.(p)
        }
      : report
    return {
      passphrase: this.#passphrase(input),
      logger: this.#log,
      ...(s.kdf && { kdf: s.kdf }),
      ...(s.now && { now: s.now }),
      ...(s.lock && { lock: s.lock }),
      ...(onProgress && { onProgress }),
    }
  }

  #passphrase(input: CallOptions): string | undefined {
    return input.passphrase ?? this.#settings.passphrase
  }

  #targetOf(target: string | undefined): string {
    const t = target ?? this.#settings.target
    if (t === undefined) throw new BackupError('NO_BACKUP_TARGET', 'no backup target: pass one, or set backup.target in the config')
    return t
  }

  async #withRepo<T>(target: string | undefined, job: OperationContext | undefined, fn: (repo: BackupRepository) => Promise<T>): Promise<T> {
    const repo = openRepository(this.#targetOf(target), this.#settings.repositoryOptions)
    try {
      return await fn(job ? job.guard(repo) : repo)
    } finally {
      await repo.close()
    }
  }

  /**
   * The checks an operation passes before it runs, each answered at once: a target that can be
   * used (preflight.ts), and no other operation running (BACKUP_BUSY with a retry hint).
   */
  async #check(target: string | undefined, access: 'read' | 'write'): Promise<void> {
    await checkTarget(this.#targetOf(target), access)
    this.#runner.checkIdle()
  }

  /** Runs `fn` as this node's one long operation, with a deadline and an abort path (operations.ts). */
  #exclusive<T>(kind: OperationKind, fn: (job: OperationContext) => Promise<T>): Promise<T> {
    return this.#runner.run(kind, fn)
  }

  /** Live entities of the node: the expected count of a full backup (for its progress). */
  #liveEntities(): number {
    const counts = (this.#store as Partial<{ entityCounts: Readonly<Record<string, number>> }>).entityCounts
    return counts ? Object.values(counts).reduce((a, b) => a + b, 0) : 0
  }
}
