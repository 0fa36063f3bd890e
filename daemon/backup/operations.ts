import type { Progress } from './create.ts'
import { BackupError } from './errors.ts'
import type { BackupRepository, RepoCallOptions, SetWriter } from './repository.ts'

/** The long backup operations (docs/backups.md, Long operations). */
export type OperationKind = 'backup' | 'restore' | 'verify' | 'synthesize' | 'prune'

/** A running operation as `/v1/status` (`backups.operation`) and the metrics report it. */
export interface OperationProgress {
  readonly kind: OperationKind
  readonly phase: string
  readonly startedAt: string
  /** Entities (backup, restore) or objects (verify) done so far. */
  readonly done: number
  /** How many there are in all; null while unknown. */
  readonly total: number | null
  /** Bytes read from and written to the repository so far. */
  readonly bytes: number
  readonly elapsedMs: number
  /** Estimated time left, from the rate so far; null while the total is unknown. */
  readonly etaMs: number | null
}

/** What an operation gets from the runner: its abort signal and where it reports progress. */
export interface OperationContext {
  readonly signal: AbortSignal
  progress(p: Progress): void
  /** `repo` with every call checked against the signal and its bytes counted. */
  guard(repo: BackupRepository): BackupRepository
}

/** The queue is busy: BACKUP_BUSY (423), answered at once with `Retry-After`. */
export class BackupBusyError extends BackupError {
  /** Seconds after which trying again makes sense (the `Retry-After` header). */
  readonly retryAfterSec: number

  constructor(message: string, retryAfterSec: number) {
    super('BACKUP_BUSY', message)
    this.retryAfterSec = retryAfterSec
  }
}

/** Default deadline of one operation: 6 hours (docs/backups.md, Long operations). */
export const DEFAULT_OPERATION_DEADLINE_MS = 6 * 3600_000

interface Running {
  readonly kind: OperationKind
  readonly started: number
  readonly controller: AbortController
  done: Promise<unknown>
  phase: string
  count: number
  total: number | null
  bytes: number
}

/**
 * Runs the long operations of a node's backups one at a time (docs/backups.md, Long operations):
 * a second one asked for while one runs is refused at once with BACKUP_BUSY and a retry hint
 * instead of waiting behind it; each has a deadline, after which it is aborted (BACKUP_ABORTED),
 * as every running one is by {@link OperationRunner.stop}. Aborting works through the signal the
 * operation's repository calls check, and the caller is answered at once even when a call hangs
 * in the file system (the operation's own cleanup then runs when that call returns).
 */
export class OperationRunner {
  readonly #deadlineMs: number
  readonly #now: () => number
  #running: Running | undefined
  #stopped = false
  /** Aborted operations whose work has not returned yet (a call stuck in the file system). */
  #abandoned = 0

  constructor(options: { deadlineMs?: number; now?: () => number } = {}) {
    this.#deadlineMs = options.deadlineMs ?? DEFAULT_OPERATION_DEADLINE_MS
    this.#now = options.now ?? Date.now
  }

  /**
   * Aborted operations still inside a call that never returned. A file-system call stuck in
   * Node's thread pool (a FIFO, a dead network mount) also keeps `process.exit` from returning,
   * so the daemon then ends its process without it (docs/operations.md, Stopping).
   */
  get abandoned(): number {
    return this.#abandoned
  }

  /** True while an operation runs. */
  get busy(): boolean {
    return this.#running !== undefined
  }

  /** The running operation's progress, or null. */
  progress(): OperationProgress | null {
    const r = this.#running
    if (!r) return null
    const elapsedMs = Math.max(0, this.#now() - r.started)
    const fraction = r.total !== null && r.total > 0 ? Math.min(1, r.count / r.total) : null
    return {
      kind: r.kind,
      phase: r.phase,
      startedAt: new Date(r.started).toISOString(),
      done: r.count,
      total: r.total,
      bytes: r.bytes,
      elapsedMs,
      etaMs: fraction !== null && fraction > 0 ? Math.round((elapsedMs * (1 - fraction)) / fraction) : null,
    }
  }

  /** Refuses at once when an operation runs (BACKUP_BUSY) or the runner stopped. */
  checkIdle(): void {
    if (this.#stopped) throw new BackupError('BACKUP_ABORTED', 'the daemon is stopping; no new backup operation starts')
    const r = this.#running
    if (r) {
      const p = this.progress()
      const eta = p?.etaMs ?? null
      const retry = eta !== null ? Math.min(300, Math.max(1, Math.ceil(eta / 1000))) : 5
      const of = r.total !== null ? `/${r.total}` : ''
      throw new BackupBusyError(`a ${r.kind} is running on this node (since ${new Date(r.started).toISOString()}, ${r.count}${of} done); try again later`, retry)
    }
  }

  /**
   * Runs `fn` unless another operation runs (BACKUP_BUSY, at once). `fn` gets a signal that
   * aborts at the deadline or on {@link stop}; the returned promise rejects with BACKUP_ABORTED
   * as soon as it does.
   */
  run<T>(kind: OperationKind, fn: (ctx: OperationContext) => Promise<T>): Promise<T> {
    try {
      this.checkIdle()
    } catch (error) {
      return Promise.reject(error as Error)
    }
    const controller = new AbortController()
    const deadline = setTimeout(
      () => controller.abort(new BackupError('BACKUP_ABORTED', `the ${kind} ran past its deadline of ${Math.round(this.#deadlineMs / 1000)} s and was stopped`)),
      this.#deadlineMs,
    )
    deadline.unref()
    const { signal } = controller
    const entry: Running = { kind, started: this.#now(), controller, done: Promise.resolve(), phase: kind, count: 0, total: null, bytes: 0 }
    const ctx: OperationContext = {
      signal,
      progress: (p) => {
        signal.throwIfAborted()
        entry.phase = p.phase
        entry.count = p.done
        if (p.total !== undefined) entry.total = p.total
      },
      guard: (repo) => guardRepository(repo, signal, (n) => (entry.bytes += n)),
    }
    const aborted = new Promise<never>((_, reject) => {
      const onAbort = (): void => reject(abortReason(signal))
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, { once: true })
    })
    aborted.catch(() => undefined)
    const work = Promise.resolve().then(() => fn(ctx))
    let settled = false
    void work.then(
      () => (settled = true),
      () => (settled = true),
    )
    this.#running = entry
    const done = Promise.race([work, aborted]).finally(() => {
      clearTimeout(deadline)
      if (this.#running === entry) this.#running = undefined
      if (!settled) {
        this.#abandoned++
        void work.catch(() => undefined).finally(() => this.#abandoned--)
      }
    })
    entry.done = done
    return done
  }

  /** Sets an estimate of the running operation's total (before its own progress knows it). */
  estimateTotal(total: number): void {
    if (this.#running && this.#running.total === null && total > 0) this.#running.total = total
  }

  /** Aborts the running operation and refuses new ones; resolves once its caller was answered. */
  async stop(): Promise<void> {
    this.#stopped = true
    const r = this.#running
    if (!r) return
    r.controller.abort(new BackupError('BACKUP_ABORTED', `the daemon is stopping; the ${r.kind} was stopped`))
    await r.done.catch(() => undefined)
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason instanceof BackupError ? signal.reason : new BackupError('BACKUP_ABORTED', 'the operation was stopped', { cause: signal.reason })
}

/**
 * `repo` with every call refused once `signal` aborts (and the signal passed down, so that an S3
 * request in flight is cancelled); `count` gets the bytes each get and put moved.
 */
export function guardRepository(repo: BackupRepository, signal: AbortSignal, count: (bytes: number) => void): BackupRepository {
  const check = (): RepoCallOptions => {
    if (signal.aborted) throw abortReason(signal)
    return { signal }
  }
  const writer = (w: SetWriter): SetWriter => ({
    async put(name, bytes) {
      await w.put(name, bytes, check())
      count(bytes.length)
    },
    async publish(manifest) {
      await w.publish(manifest, check())
    },
    abort: () => w.abort(),
  })
  return {
    location: repo.location,
    async get(key) {
      const bytes = await repo.get(key, check())
      if (bytes) count(bytes.length)
      return bytes
    },
    async put(key, bytes) {
      await repo.put(key, bytes, check())
      count(bytes.length)
    },
    list: async (prefix) => repo.list(prefix, check()),
    // Lock release and cleanup must still work after an abort: deletes are not refused.
    delete: async (key) => repo.delete(key, signal.aborted ? {} : { signal }),
    listSets: async () => repo.listSets(check()),
    beginSet: async (id) => writer(await repo.beginSet(id, check())),
    deleteSet: async (id) => repo.deleteSet(id, check()),
    removeDebris: async () => repo.removeDebris(check()),
    close: () => repo.close(),
  }
}
