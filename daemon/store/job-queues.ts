/** The committer's queues of jobs, and how a group is taken from them. */
import { jobSize, type Job, type JobInput } from './jobs.ts'

/** Sizes of the committer's groups and queue (see {@link EntityStoreOptions}). */
export interface QueueLimits {
  readonly maxGroupOps: number
  readonly maxQueuedOps: number
}

/**
 * The committer's two queues: local writes, wipes and purges in order, counted against
 * maxQueuedOps; and remote changes and snapshots, which go first and are never refused for load.
 * Groups are taken from their heads.
 */
export class JobQueues {
  readonly #maxGroupOps: number
  readonly #maxQueuedOps: number
  /** Local writes, wipes and purges, in order; counted against maxQueuedOps. */
  #queue: Job[] = []
  /** Remote changes and snapshots: go first, never refused for load. */
  #replicationQueue: Job[] = []
  #queuedOps = 0

  constructor(limits: QueueLimits) {
    this.#maxGroupOps = limits.maxGroupOps
    this.#maxQueuedOps = limits.maxQueuedOps
  }

  get empty(): boolean {
    return this.#queue.length === 0 && this.#replicationQueue.length === 0
  }

  /** Queues a job; false when it is a local one and too many local operations wait already. */
  push(job: Job): boolean {
    const size = jobSize(job)
    if (isReplicationJob(job)) {
      // Never refused for load: replication waits its turn (its sessions wait with it), and goes
      // ahead of queued local writes so that a write burst cannot stall convergence.
      this.#replicationQueue.push(job)
    } else {
      if (this.#queuedOps + size > this.#maxQueuedOps) return false
      this.#queue.push(job)
      this.#queuedOps += size
    }
    return true
  }

  /** The local queue's head when no replication job waits (undefined when one does). */
  head(): Job | undefined {
    return this.#replicationQueue.length > 0 ? undefined : (this.#queue[0] as Job)
  }

  /** Takes the local queue's head, {@link head} (a wipe, a purge or an index job, which runs alone). */
  dropHead(job: Job): void {
    this.#queue.shift()
    this.#queuedOps -= jobSize(job)
  }

  /** The next group: led by replication jobs when some wait, else local writes. */
  takeGroup(): Job[] {
    return this.head() === undefined ? this.#takeMixedGroup() : this.#takeLocalGroup()
  }

  /** Local writes from the head of the queue, up to maxGroupOps (at least one job). */
  #takeLocalGroup(): Job[] {
    const group: Job[] = []
    let ops = 0
    while (this.#queue.length > 0) {
      const next = this.#queue[0] as Job
      const size = jobSize(next)
      if (next.kind === 'wipe' || next.kind === 'purge' || next.kind === 'index' || (group.length > 0 && ops + size > this.#maxGroupOps)) break
      group.push(next)
      this.#queue.shift()
      ops += size
    }
    this.#queuedOps -= ops
    return group
  }

  /**
   * A group led by replication jobs (at most half the group while local writes wait, so neither
   * starves), filled up with local writes.
   */
  #takeMixedGroup(): Job[] {
    const group: Job[] = []
    let ops = 0
    const localWaiting = this.#queue.length > 0 && this.#queue[0]?.kind === 'local'
    const replicationBudget = localWaiting ? Math.max(1, Math.floor(this.#maxGroupOps / 2)) : this.#maxGroupOps
    while (this.#replicationQueue.length > 0) {
      const size = jobSize(this.#replicationQueue[0] as Job)
      if (group.length > 0 && ops + size > replicationBudget) break
      group.push(this.#replicationQueue.shift() as Job)
      ops += size
    }
    let localOps = 0
    while (this.#queue.length > 0 && this.#queue[0]?.kind === 'local') {
      const size = jobSize(this.#queue[0])
      if (ops + size > this.#maxGroupOps) break
      group.push(this.#queue.shift() as Job)
      ops += size
      localOps += size
    }
    this.#queuedOps -= localOps
    return group
  }

  /** Puts jobs back at the head of their queues, in order (to be done again). */
  requeue(jobs: readonly Job[]): void {
    const local = jobs.filter((j) => !isReplicationJob(j))
    this.#replicationQueue.unshift(...jobs.filter(isReplicationJob))
    this.#queue.unshift(...local)
    this.#queuedOps += local.reduce((n, j) => n + jobSize(j), 0)
  }
}

/** Remote changes and snapshot merges (as opposed to local writes, wipes and purges). */
function isReplicationJob(job: JobInput): boolean {
  return job.kind === 'remote' || job.kind === 'snapshot' || job.kind === 'snapshot-end'
}
