import { beforeAll, describe, expect, it } from 'vitest'
import { parseFailpoints } from '../../daemon/failpoints.ts'
import { tmpfsUnavailable } from '../../scripts/chaos/disks.ts'
import { netnsUnavailable } from '../../scripts/chaos/netns.ts'
import { runChaos, summarize, type ChaosOptions, type ChaosReport } from '../../scripts/chaos/run.ts'
import { makeSchedule, type FaultKind, type ScheduledFault } from '../../scripts/chaos/schedule.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

/**
 * Proof that the chaos checker works (issue 6, part 5): short loopback runs (3 real daemons,
 * process faults) with a planted bug each. The checker must fail every one of them, and pass the
 * same kind of run without failpoints. The full-disk bug needs the tmpfs data disks of netns mode
 * (root); its test is skipped with the reason otherwise.
 */

const noDisks = netnsUnavailable() ?? tmpfsUnavailable()

// The runs' data dirs (a failed run keeps its own) go in a temp dir removed after the file.
const tempDir = useTempDirs('all')
let dataRoot: string
beforeAll(async () => {
  dataRoot = await tempDir('meshsync-chaos-')
})

const short = (seed: number, extra: Partial<ChaosOptions> = {}): ChaosOptions => ({
  nodes: 3,
  durationS: 16,
  seed,
  netns: false,
  faultMs: [1_500, 3_000],
  gapMs: [1_000, 2_000],
  convergeTimeoutS: 40,
  clientsPerNode: 2,
  log: () => undefined,
  reportPath: `tmp/chaos/test-seed${seed}.json`,
  dataRoot,
  ...extra,
})

describe('failpoints', () => {
  it('are off unless named, and parse what they name', () => {
    expect(parseFailpoints(undefined)).toEqual({ ackBeforeCommitMs: 0, dropRemoteOneIn: 0, writeAfterFailure: false, staleIndexOneIn: 0 })
    expect(parseFailpoints('ack-before-commit,drop-remote-1-in-1000')).toEqual({ ackBeforeCommitMs: 300, dropRemoteOneIn: 1000, writeAfterFailure: false, staleIndexOneIn: 0 })
    expect(parseFailpoints('ack-before-commit=50')).toEqual({ ackBeforeCommitMs: 50, dropRemoteOneIn: 0, writeAfterFailure: false, staleIndexOneIn: 0 })
    expect(parseFailpoints('write-after-failure')).toEqual({ ackBeforeCommitMs: 0, dropRemoteOneIn: 0, writeAfterFailure: true, staleIndexOneIn: 0 })
    expect(parseFailpoints('stale-index-1-in-40').staleIndexOneIn).toBe(40)
    expect(() => parseFailpoints('skip-everything')).toThrow(/unknown failpoint/)
  })

  it('the same seed gives the same fault schedule', () => {
    const a = makeSchedule({ seed: 42, nodes: 5, durationMs: 180_000, netns: true })
    expect(makeSchedule({ seed: 42, nodes: 5, durationMs: 180_000, netns: true })).toEqual(a)
    expect(makeSchedule({ seed: 43, nodes: 5, durationMs: 180_000, netns: true })).not.toEqual(a)
  })
})

describe('the chaos checker', () => {
  it('passes a clean short run', { timeout: 180_000 }, async () => {
    const report = await runChaos(short(11))
    if (!report.ok) console.log(summarize(report))
    expect(report.ok).toBe(true)
    expect(report.check?.lost).toBe(0)
    expect(report.workload.acknowledged).toBeGreaterThan(200)
    expect(report.faults.length).toBeGreaterThanOrEqual(3)
    // Every node's declared indexes were verified against a full scan, and agreed.
    expect(report.indexes).toEqual({ checked: 3 * 2, mismatches: [] })
  })

  it('fails a run whose daemons acknowledge writes before committing them (kill -9 loses them)', { timeout: 180_000 }, async () => {
    const report = await runChaos(short(12, { failpoints: 'ack-before-commit=200', kinds: ['kill9-restart', 'restart-all'] }))
    console.log(summarize(report))
    expect(report.ok).toBe(false)
    expect((report.check?.lost ?? 0) + report.workload.staleReads).toBeGreaterThan(0)
  })

  it.skipIf(noDisks !== undefined)(`fails a run whose daemons keep writing behind a torn log record after a full disk${noDisks ? ` (skipped: ${noDisks})` : ''}`, { timeout: 300_000 }, async () => {
    // A fixed schedule, so that the planted bug loses writes whatever the timing:
    // 1. every node's disk fills up early in the run, while each LevelDB still writes its first
    //    log: the append that meets ENOSPC is cut short at the end of the disk's last page, a
    //    torn record in the live log (no table file is written that early, which would fail
    //    instead and make LevelDB refuse every later write);
    // 2. the disks are freed and every node is cut off from every other: with the failpoint, each
    //    store goes on writing behind its torn record, and no peer gets a copy of those writes
    //    (a peer's copy would bring them back after the crash);
    // 3. every node is killed at once, long before its memtable would be flushed to a table
    //    (which would retire the torn log), so recovery drops the writes behind the torn record.
    // LevelDB's recovery sometimes reads past a torn record: with this schedule on one node only,
    // 2 of 7 scratch runs lost nothing. Hence a tear on every node. The same schedule without the
    // failpoint must pass: the failure is the bug's, not the schedule's.
    // (A seeded schedule showed the bug only in some runs and had to be re-pinned as the daemons'
    // timing moved; CI saw a pinned seed lose nothing in 3 runs.)
    const all = [0, 1, 2]
    const fault = (index: number, kind: FaultKind, at: number, duration: number, cuts: string[] = []): ScheduledFault => ({ index, kind, at, duration, nodes: all, groups: [], cuts, lossPct: 0 })
    const everyCut = all.flatMap((a) => all.filter((b) => b !== a).map((b) => `${a}>${b}`))
    const schedule = [fault(0, 'disk-full', 1_500, 1_500), fault(1, 'one-way-cut', 3_100, 2_000, everyCut), fault(2, 'restart-all', 5_100, 2_000)]
    const options = short(17, { netns: true, durationS: 10, schedule, convergeTimeoutS: 20 })

    const clean = await runChaos(options)
    if (!clean.ok) console.log(summarize(clean))
    expect(clean.ok).toBe(true)
    expect(clean.faults.map((f) => f.kind)).toEqual(['disk-full', 'one-way-cut', 'restart-all'])
    expect(Object.keys(clean.workload.errors).some((k) => k.endsWith('STORAGE_FULL'))).toBe(true)

    // 2,040-2,680 writes lost in each of 20 scratch runs and 3 test runs. Another run only if one
    // lost nothing (all three recoveries reading past their tear: by the rate above, about 1 run
    // in 40 if the nodes' tears were independent).
    let caught: ChaosReport | undefined
    for (let attempt = 0; attempt < 3 && caught === undefined; attempt++) {
      const report = await runChaos({ ...options, failpoints: 'write-after-failure' })
      console.log(summarize(report))
      expect(Object.keys(report.workload.errors).some((k) => k.endsWith('STORAGE_FULL'))).toBe(true)
      if (!report.ok) caught = report
    }
    expect(caught?.ok).toBe(false)
    expect(caught?.check?.lost).toBeGreaterThan(0)
  })

  it('fails a run whose daemons leave an index entry stale now and then (the index check)', { timeout: 180_000 }, async () => {
    // Short: a few dozen updates of indexed fields on each node, across kill -9 and SIGSTOP; with
    // one index update in 3 skipped, the index of the shared entities goes stale on every node
    // many times (scratch runs at one in 30 and one in 10 left 1 or 2 stale entries on 2 of 3 nodes; at one in 3, 19 or more on each).
    const report = await runChaos(short(14, { failpoints: 'stale-index-1-in-3', durationS: 8, kinds: ['kill9-restart', 'sigstop'] }))
    console.log(summarize(report))
    expect(report.ok).toBe(false)
    // The data itself is fine: only the index check fails the run.
    expect(report.check?.lost).toBe(0)
    expect(report.check?.divergent).toBe(false)
    expect(report.indexes?.checked).toBe(3 * 2)
    expect(report.indexes?.mismatches.length).toBeGreaterThan(0)
    expect(report.indexes?.mismatches.every((m) => m.includes('disagrees with a full scan'))).toBe(true)
    expect(report.failures.some((f) => f.includes('indexes disagree with a full scan'))).toBe(true)
  })

  it('fails a run whose daemons drop remote changes while advancing their vector', { timeout: 180_000 }, async () => {
    const report = await runChaos(short(13, { failpoints: 'drop-remote-1-in-500' }))
    console.log(summarize(report))
    expect(report.ok).toBe(false)
    expect((report.check?.lost ?? 0) > 0 || report.check?.divergent).toBe(true)
  })
})
