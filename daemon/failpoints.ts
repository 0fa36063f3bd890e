/**
 * Failpoints: deliberate bugs compiled into the daemon, all off unless the environment variable
 * `MESHSYNC_FAILPOINTS` names them (comma-separated). They exist to prove that the chaos
 * harness's checker catches real failures (scripts/chaos, test/chaos); never set it in
 * production. Read once, at module load.
 *
 * - `ack-before-commit`: the store answers a group of writes before its batch is written, and
 *   writes it `ack-before-commit` ms later (default 300): a kill -9 in between loses writes that
 *   were acknowledged.
 * - `drop-remote-1-in-N`: the replicator blanks the Yjs update of about one remote change in N
 *   before applying it, so the change counts as applied (the vector advances) while its content
 *   is lost on this node.
 * - `write-after-failure`: the LevelDB store keeps writing after a failed write (a full disk)
 *   instead of reopening first, so later writes land behind a torn log record and a kill -9
 *   loses them (daemon/storage/level-kv-store.ts).
 * - `stale-index-1-in-N`: about one update of an index entry in N is skipped (daemon/store/indexes.ts):
 *   the entity changes, its entry keeps the old values (an index that disagrees with a scan).
 */

export interface Failpoints {
  /** Delay in ms between answering a group of writes and committing it; 0 when off. */
  readonly ackBeforeCommitMs: number
  /** Blank one remote change in this many; 0 when off. */
  readonly dropRemoteOneIn: number
  /** Keep writing to LevelDB after a failed write, without reopening it. */
  readonly writeAfterFailure: boolean
  /** Skip one index entry update in this many; 0 when off. */
  readonly staleIndexOneIn: number
}

export function parseFailpoints(spec: string | undefined): Failpoints {
  let ackBeforeCommitMs = 0
  let dropRemoteOneIn = 0
  let writeAfterFailure = false
  let staleIndexOneIn = 0
  for (const raw of (spec ?? '').split(',')) {
    const name = raw.trim()
    if (name === '') continue
    const ack = /^ack-before-commit(?:=(\d+))?$/.exec(name)
    const drop = /^drop-remote-1-in-(\d+)$/.exec(name)
    const stale = /^stale-index-1-in-(\d+)$/.exec(name)
    if (ack) ackBeforeCommitMs = Number(ack[1] ?? 300)
    else if (name === 'write-after-failure') writeAfterFailure = true
    else if (drop) dropRemoteOneIn = Math.max(1, Number(drop[1]))
    else if (stale) staleIndexOneIn = Math.max(1, Number(stale[1]))
    else throw new Error(`MESHSYNC_FAILPOINTS: unknown failpoint ${JSON.stringify(name)}`)
  }
  return { ackBeforeCommitMs, dropRemoteOneIn, writeAfterFailure, staleIndexOneIn }
}

export const failpoints: Failpoints = parseFailpoints(process.env.MESHSYNC_FAILPOINTS)

/** True for about one call in `failpoints.dropRemoteOneIn` (never when off). */
export function shouldDropRemote(): boolean {
  return failpoints.dropRemoteOneIn > 0 && Math.random() * failpoints.dropRemoteOneIn < 1
}

/** True for about one call in `failpoints.staleIndexOneIn` (never when off). */
export function shouldStaleIndex(): boolean {
  return failpoints.staleIndexOneIn > 0 && Math.random() * failpoints.staleIndexOneIn < 1
}
