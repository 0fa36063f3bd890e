import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import { BackupError } from './errors.ts'
import type { BackupRepository } from './repository.ts'
import { isProcessAlive } from '../process-alive.ts'

/**
 * Exclusive: the holder may change the repository (create, synthesize, prune); no other lock
 * coexists with it. Shared: the holder only reads (verify, restore); shared locks coexist.
 */
export type LockMode = 'shared' | 'exclusive'

/** What a lock object (`locks/<id>.json`) holds. */
export interface LockInfo {
  readonly id: string
  /** Absent in older lock objects: exclusive. */
  readonly mode?: LockMode
  /** Who holds it (e.g. `backup create` by node X). */
  readonly owner: string
  readonly host: string
  readonly pid: number
  readonly createdAt: number
  /** Refreshed while the holder works; an old heartbeat means the holder is gone. */
  readonly heartbeatAt: number
}

/** How a lock is taken. */
export interface LockOptions {
  readonly owner: string
  readonly mode: LockMode
  /** A lock whose heartbeat is older than this is stale (default 5 minutes). */
  readonly staleAfterMs?: number
  /** How often the holder refreshes its heartbeat (default staleAfterMs / 5). */
  readonly heartbeatMs?: number
  /** Keep trying this long when the repository is locked (default 0: refuse at once). */
  readonly waitMs?: number
  readonly now?: () => number
  readonly logger?: Logger
  /** Pid and host written into the lock (tests). */
  readonly pid?: number
  readonly host?: string
}

/** A held lock. */
export interface RepositoryLock {
  readonly info: LockInfo
  release(): Promise<void>
}

const DEFAULT_STALE_MS = 5 * 60_000

/**
 * Takes a lock on the repository, shared (readers) or exclusive (writers). Stale locks (holder's
 * pid dead on this host, or no heartbeat for `staleAfterMs`) are removed. A taker writes its
 * lock, then lists the locks: if any other live lock conflicts with its own (either of the two
 * exclusive), it withdraws and gets REPOSITORY_LOCKED (or tries again, with `waitMs`). Of two
 * takers racing, whichever lists second sees the other, so they never both proceed (they may
 * both withdraw; waiters retry after a random pause).
 */
export async function acquireLock(repo: BackupRepository, options: LockOptions): Promise<RepositoryLock> {
  const now = options.now ?? Date.now
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_MS
  const deadline = now() + (options.waitMs ?? 0)
  for (let attempt = 0; ; attempt++) {
    try {
      return await tryAcquire(repo, options, now, staleAfterMs)
    } catch (error) {
      if (!(error instanceof BackupError) || error.code !== 'REPOSITORY_LOCKED' || now() >= deadline) throw error
      const pause = Math.min(1000, 50 * 2 ** Math.min(attempt, 5))
      await new Promise((r) => setTimeout(r, pause / 2 + Math.random() * pause))
    }
  }
}

async function tryAcquire(repo: BackupRepository, options: LockOptions, now: () => number, staleAfterMs: number): Promise<RepositoryLock> {
  await breakStale(repo, now, staleAfterMs, options.logger)
  const t = now()
  const info: LockInfo = {
    id: `${t.toString(36).padStart(10, '0')}-${randomBytes(6).toString('hex')}`,
    mode: options.mode,
    owner: options.owner,
    host: options.host ?? hostname(),
    pid: options.pid ?? process.pid,
    createdAt: t,
    heartbeatAt: t,
  }
  const key = `locks/${info.id}.json`
  await repo.put(key, encode(info))
  const others = (await readLocks(repo)).filter((l) => l.info?.id !== info.id)
  const holder = others.find((l) => l.info !== undefined && !isStale(l.info, now(), staleAfterMs) && conflicts(l.info, info))
  if (holder?.info) {
    await repo.delete(key)
    throw lockedBy(repo, holder.info)
  }
  let current = info
  let released = false
  let beat: Promise<void> = Promise.resolve()
  const interval = setInterval(() => {
    if (released) return
    current = { ...current, heartbeatAt: now() }
    beat = repo.put(key, encode(current)).catch((err: unknown) => options.logger?.warn({ err, lock: key }, 'refreshing the backup lock failed'))
  }, options.heartbeatMs ?? Math.max(1000, Math.floor(staleAfterMs / 5)))
  interval.unref()
  return {
    info,
    async release() {
      if (released) return
      released = true
      clearInterval(interval)
      // A refresh still in flight would write the lock back after the delete.
      await beat
      await repo.delete(key)
    },
  }
}

/** Removes stale locks; resolves with the ones removed. */
export async function breakStale(repo: BackupRepository, now: () => number, staleAfterMs: number, logger?: Logger): Promise<LockInfo[]> {
  const broken: LockInfo[] = []
  for (const { key, info } of await readLocks(repo)) {
    if (info === undefined || isStale(info, now(), staleAfterMs)) {
      logger?.warn({ lock: info ?? key }, 'breaking a stale backup repository lock')
      await repo.delete(key)
      if (info) broken.push(info)
    }
  }
  return broken
}

/** The locks currently in the repository (undefined info: unreadable). */
export async function readLocks(repo: BackupRepository): Promise<{ key: string; info: LockInfo | undefined }[]> {
  const out: { key: string; info: LockInfo | undefined }[] = []
  for (const key of await repo.list('locks/')) {
    const bytes = await repo.get(key)
    if (bytes === undefined) continue // released meanwhile
    let info: LockInfo | undefined
    try {
      const parsed = JSON.parse(new TextDecoder().decode(bytes)) as LockInfo
      if (typeof parsed.id === 'string' && typeof parsed.pid === 'number' && typeof parsed.heartbeatAt === 'number') info = parsed
    } catch {
      info = undefined
    }
    out.push({ key, info })
  }
  return out
}

/** A lock whose holder is gone: a dead pid on this host, or a heartbeat older than the timeout. */
export function isStale(info: LockInfo, now: number, staleAfterMs: number): boolean {
  if (now - info.heartbeatAt > staleAfterMs) return true
  if (info.host === hostname() && !isProcessAlive(info.pid)) return true
  return false
}


/** Two locks may not be held together unless both are shared. */
function conflicts(a: LockInfo, b: LockInfo): boolean {
  return (a.mode ?? 'exclusive') === 'exclusive' || (b.mode ?? 'exclusive') === 'exclusive'
}

function lockedBy(repo: BackupRepository, info: LockInfo): BackupError {
  const since = new Date(info.createdAt).toISOString()
  return new BackupError('REPOSITORY_LOCKED', `${repo.location} is locked by ${info.owner} (host ${info.host}, pid ${info.pid}, since ${since})`)
}

function encode(info: LockInfo): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(info))
}

/** Runs `fn` holding a lock on the repository; releases it whatever happens. */
export async function withLock<T>(repo: BackupRepository, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(repo, options)
  try {
    return await fn()
  } finally {
    await lock.release()
  }
}
