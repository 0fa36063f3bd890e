import { describe, expect, it } from 'vitest'
import { parseFailpoints } from '../../daemon/failpoints.ts'
import { tmpfsUnavailable } from '../../scripts/chaos/disks.ts'
import { netnsUnavailable } from '../../scripts/chaos/netns.ts'
import { runChaos, summarize, type ChaosOptions } from '../../scripts/chaos/run.ts'
import { makeSchedule } from '../../scripts/chaos/schedule.ts'

/**
 * Proof that the chaos checker works (issue 6, part 5): short loopback runs (3 real daemons,
 * process faults) with a planted bug each. The checker must fail every one of them, and pass the
 * same kind of run without failpoints. The full-disk bug needs the tmpfs data disks of netns mode
 * (root); its test is skipped with the reason otherwise.
 */

const noDisks = netnsUnavailable() ?? tmpfsUnavailable()

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
  ...extra,
})

describe('failpoints', () => {
  it('are off unless named, and parse what they name', () => {
    expect(parseFailpoints(undefined)).toEqual({ ackBeforeCommitMs: 0, dropRemoteOneIn: 0, writeAfterFailure: false })
    expect(parseFailpoints('ack-before-commit,drop-remote-1-in-1000')).toEqual({ ackBeforeCommitMs: 300, dropRemoteOneIn: 1000, writeAfterFailure: false })
    expect(parseFailpoints('ack-before-commit=50')).toEqual({ ackBeforeCommitMs: 50, dropRemoteOneIn: 0, writeAfterFailure: false })
    expect(parseFailpoints('write-after-failure')).toEqual({ ackBeforeCommitMs: 0, dropRemoteOneIn: 0, writeAfterFailure: true })
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
  })

  it('fails a run whose daemons acknowledge writes before committing them (kill -9 loses them)', { timeout: 180_000 }, async () => {
    const report = await runChaos(short(12, { failpoints: 'ack-before-commit=200', kinds: ['kill9-restart', 'restart-all'] }))
    console.log(summarize(report))
    expect(report.ok).toBe(false)
    expect((report.check?.lost ?? 0) + report.workload.staleReads).toBeGreaterThan(0)
  })

  it.skipIf(noDisks !== undefined)(`fails a run whose daemons keep writing behind a torn log record after a full disk${noDisks ? ` (skipped: ${noDisks})` : ''}`, { timeout: 300_000 }, async () => {
    // Seed 17: every node is killed twice, then two disks fill up (writes refused, a torn record
    // at the end of a log); the writes acknowledged after the disk was freed are in the torn log,
    // and the end of the run kills every node again. Whether a refused write tears the log
    // depends on where ENOSPC strikes (a log append, or a table file of a compaction, after which
    // LevelDB refuses every write anyway), which timing decides. So the seed runs up to three
    // times; the checker must fail the first run in which the bug lost writes, and some run must.
    // The seed is re-pinned when the daemons' timing moves: seed 14 showed the bug in most runs
    // until the gossip relay (less traffic per write), then in none of 7; seed 17 lost 1,890-2,039
    // writes in each of 4 runs after it (seed 18: 2 of 3).
    // The daemons run without V8 flags here: single-threaded V8 (their default on 2 CPUs) moves
    // where ENOSPC strikes (with it, no log tore in 6 runs of seed 14). This test is of the
    // checker; the timing that shows the bug is pinned.
    const options = short(17, { netns: true, durationS: 20, faultMs: [2_000, 4_000], gapMs: [1_000, 2_000], failpoints: 'write-after-failure', v8Flags: '', kinds: ['disk-full', 'restart-all'], convergeTimeoutS: 15 })
    let caught: Awaited<ReturnType<typeof runChaos>> | undefined
    for (let attempt = 0; attempt < 3 && caught === undefined; attempt++) {
      const report = await runChaos(options)
      console.log(summarize(report))
      expect(report.faults.map((f) => f.kind).slice(0, 4)).toEqual(['restart-all', 'restart-all', 'disk-full', 'disk-full'])
      expect(Object.keys(report.workload.errors).some((k) => k.endsWith('STORAGE_FULL'))).toBe(true)
      if (!report.ok) caught = report
    }
    expect(caught?.ok).toBe(false)
    expect(caught?.check?.lost).toBeGreaterThan(0)
  })

  it('fails a run whose daemons drop remote changes while advancing their vector', { timeout: 180_000 }, async () => {
    const report = await runChaos(short(13, { failpoints: 'drop-remote-1-in-500' }))
    console.log(summarize(report))
    expect(report.ok).toBe(false)
    expect((report.check?.lost ?? 0) > 0 || report.check?.divergent).toBe(true)
  })
})
