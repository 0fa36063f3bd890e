import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { CheckResult } from '../../../scripts/chaos/checker.ts'
import type { FaultEvent } from '../../../scripts/chaos/faults.ts'
import { soakPlan } from '../../../scripts/soak/plan.ts'
import { renderSvg } from '../../../scripts/soak/plot.ts'
import { cpuSeconds, diskUsage, metricValue, type SoakSample } from '../../../scripts/soak/sampler.ts'
import { compactionKeepsUp, errorLines, explainErrors, growthByNode, judge, type JudgeInput, type LoggedError } from '../../../scripts/soak/targets.ts'

const MIN = 60_000

describe('the soak plan', () => {
  it('an hour: a sample a minute, a backup every 5 minutes, a kill -9 and a partition in turn every few minutes, never killing the witnesses', () => {
    const p = soakPlan({ minutes: 60, nodes: 5, seed: 1, netns: true })
    expect(p).toMatchObject({ durationMs: 60 * MIN, sampleEveryMs: MIN, backupEveryMs: 5 * MIN, baselineFromMs: 10 * MIN, windowMs: 5 * MIN, witnesses: [0, 1] })
    expect(p.faults.length).toBeGreaterThanOrEqual(18)
    expect(p.faults.map((f) => f.kind)).toEqual(p.faults.map((_, i) => (i % 2 === 0 ? 'kill9-restart' : 'partition-halves')))
    for (const f of p.faults.filter((f) => f.kind === 'kill9-restart')) expect([2, 3, 4]).toContain(f.nodes[0])
    for (const f of p.faults.filter((f) => f.kind === 'partition-halves')) {
      expect(f.groups.map((g) => g.length).sort()).toEqual([2, 3])
      expect([...(f.groups[0] ?? []), ...(f.groups[1] ?? [])].sort()).toEqual([0, 1, 2, 3, 4])
    }
    // One after another, the first after a quiet start, the last healed before the end.
    expect(p.faults[0]?.at).toBeGreaterThanOrEqual(6 * MIN)
    p.faults.forEach((f, i) => expect(f.at + f.duration).toBeLessThan(p.faults[i + 1]?.at ?? p.durationMs))
    expect(soakPlan({ minutes: 60, nodes: 5, seed: 1, netns: true })).toEqual(p)
    expect(soakPlan({ minutes: 60, nodes: 5, seed: 2, netns: true }).faults).not.toEqual(p.faults)
  })

  it('3 minutes: as many faults, at a proportionally faster pace; loopback: a SIGSTOP for each partition', () => {
    const hour = soakPlan({ minutes: 60, nodes: 5, seed: 1, netns: true })
    const p = soakPlan({ minutes: 3, nodes: 5, seed: 1, netns: false })
    expect(p).toMatchObject({ durationMs: 3 * MIN, sampleEveryMs: 3_000, backupEveryMs: 15_000, baselineFromMs: 30_000 })
    expect(Math.abs(p.faults.length - hour.faults.length)).toBeLessThanOrEqual(2)
    expect(new Set(p.faults.map((f) => f.kind))).toEqual(new Set(['kill9-restart', 'sigstop']))
    expect(p.faults.at(-1)?.at).toBeLessThan(p.durationMs)
  })
})

const sample = (node: number, t: number, pid: number | null, rss: number, fds = 40): SoakSample => ({
  t,
  node,
  pid,
  rssBytes: pid === null ? null : rss,
  heapUsedBytes: null,
  heapTotalBytes: null,
  fds: pid === null ? null : fds,
  cpuPct: null,
  dataDirBytes: 0,
  dbBytes: 0,
  entities: null,
  changes: null,
})

/** An hour sampled once a minute: node 0 steady at `rss0` then `rss0End`, node 2 restarted at minute 30. */
function hour(rss0End: number): SoakSample[] {
  const out: SoakSample[] = []
  for (let m = 0; m <= 60; m++) {
    out.push(sample(0, m * MIN, 100, m < 55 ? 200e6 : rss0End))
    out.push(sample(2, m * MIN, m < 30 ? 200 : m === 30 ? null : 201, m < 30 ? 200e6 : 100e6))
  }
  return out
}

const cleanCheck: CheckResult = {
  ok: true,
  acknowledged: 1000,
  lost: 0,
  lostSamples: [],
  phantoms: 0,
  phantomSamples: [],
  partialBatches: 0,
  divergent: false,
  divergenceSamples: [],
  conflictsIdentical: true,
  conflicts: 0,
  fingerprints: ['abc'],
  supersededByUnknown: 0,
}

function input(over: Partial<JudgeInput> = {}): JudgeInput {
  return {
    plan: soakPlan({ minutes: 60, nodes: 5, seed: 1, netns: true }),
    samples: hour(205e6),
    check: cleanCheck,
    staleReads: 0,
    converged: true,
    crashes: [],
    pendingYjs: 0,
    errors: [],
    compaction: [{ node: 0, beforeBytes: 150e6, afterBytes: 120e6 }],
    backups: { attempted: 12, taken: { files: 6, entities: 6 }, failed: {}, verified: 12, corrupt: [] },
    queries: { answered: 500, wrong: 0, serverErrors: 0, notAnswered: 3, refused: {}, samples: [] },
    indexes: { checked: 10, mismatches: [] },
    ...over,
  }
}

const verdicts = (i: JudgeInput): string[] => judge(i).map((t) => t.verdict)

describe('the soak targets', () => {
  it('growth compares the medians of the baseline and final windows of processes that ran through both', () => {
    const g = growthByNode(hour(230e6), soakPlan({ minutes: 60, nodes: 5, seed: 1, netns: true }), 'rssBytes')
    expect(g).toEqual([{ node: 0, from: 200e6, to: 230e6, growth: expect.closeTo(0.15, 6) }]) // node 2 restarted: not compared
  })

  it('a clean hour passes every target', () => {
    expect(verdicts(input())).toEqual(['PASS', 'PASS', 'PASS', 'PASS', 'PASS', 'PASS', 'PASS', 'PASS', 'PASS'])
  })

  it('fails each target on its planted fault', () => {
    expect(verdicts(input({ samples: hour(230e6) }))[0]).toBe('FAIL') // RSS +15%
    const fdsUp = hour(205e6).map((s) => (s.node === 0 && s.t >= 55 * MIN ? { ...s, fds: 50 } : s))
    expect(verdicts(input({ samples: fdsUp }))[1]).toBe('FAIL')
    expect(verdicts(input({ compaction: [{ node: 0, beforeBytes: 200e6, afterBytes: 100e6 }] }))[2]).toBe('FAIL')
    expect(compactionKeepsUp(20e6, 1e6)).toBe(true) // LevelDB's own slack in a small store
    expect(verdicts(input({ check: { ...cleanCheck, lost: 1, lostSamples: ['x'] } }))[3]).toBe('FAIL')
    expect(verdicts(input({ staleReads: 1 }))[3]).toBe('FAIL')
    expect(verdicts(input({ check: undefined }))[3]).toBe('FAIL')
    expect(verdicts(input({ converged: false }))[4]).toBe('FAIL')
    const error: LoggedError = { node: 3, t: 1000, level: 50, msg: 'request failed' }
    const failed = judge(input({ errors: [error] }))[5]
    expect(failed?.verdict).toBe('FAIL')
    expect(failed?.figure).toContain('first: node 3 at 1.0 s: request failed')
    expect(verdicts(input({ errors: [{ ...error, explainedBy: 'kill9-restart #0: why' }] }))[5]).toBe('PASS')
    expect(verdicts(input({ crashes: ['node 1 exited'] }))[5]).toBe('FAIL')
    expect(verdicts(input({ backups: { attempted: 2, taken: { files: 1, entities: 1 }, failed: {}, verified: 1, corrupt: ['set x'] } }))[6]).toBe('FAIL')
    expect(verdicts(input({ queries: { answered: 5, wrong: 1, serverErrors: 0, notAnswered: 0, refused: {}, samples: [] } }))[7]).toBe('FAIL')
    expect(verdicts(input({ queries: { answered: 5, wrong: 0, serverErrors: 0, notAnswered: 0, refused: { QUERY_NEEDS_INDEX: 1 }, samples: [] } }))[7]).toBe('FAIL')
    expect(verdicts(input({ indexes: { checked: 10, mismatches: ['node 1: index ins/byNode disagrees'] } }))[8]).toBe('FAIL')
    expect(verdicts(input({ indexes: undefined }))[8]).toBe('FAIL')
  })

  it('a short run does not judge growth nor compaction, only shows them', () => {
    const short = judge(input({ plan: soakPlan({ minutes: 3, nodes: 5, seed: 1, netns: true }), samples: hour(400e6) }))
    expect(short.slice(0, 3).map((t) => t.verdict)).toEqual(['NOT JUDGED', 'NOT JUDGED', 'NOT JUDGED'])
    expect(short[0]?.name).toContain('after the first 30 s')
  })

  it('reads error lines from a pino log, and explains only those a fault of the right kind explains', () => {
    const t0 = Date.parse('2026-12-08T10:00:00.000Z')
    const log = [
      '{"level":30,"time":"2026-12-08T10:00:01.000Z","msg":"info"}',
      'not json',
      '{"level":50,"time":"2026-12-08T10:00:02.500Z","msg":"request failed","err":{"message":"boom"}}',
      '{"level":60,"time":"2026-12-08T10:00:09.000Z","msg":"fatal"}',
      '{"level":50,',
    ].join('\n')
    const lines = errorLines(log, 2, t0)
    expect(lines).toEqual([
      { node: 2, t: 2500, level: 50, msg: 'request failed', err: 'boom' },
      { node: 2, t: 9000, level: 60, msg: 'fatal' },
    ])
    const faults: FaultEvent[] = [{ index: 0, kind: 'kill9-restart', nodes: [1], detail: '', injectedAt: 2000, healedAt: 3000 }]
    const expected = [{ pattern: /boom/, kinds: ['kill9-restart'], graceMs: 1000, why: 'a test' }]
    const explained = explainErrors(lines, faults, expected)
    expect(explained.map((e) => e.explainedBy)).toEqual(['kill9-restart #0: a test', undefined])
    expect(explainErrors(lines, [{ ...faults[0], kind: 'sigstop' } as FaultEvent], expected).every((e) => e.explainedBy === undefined)).toBe(true)
    expect(explainErrors(lines, faults).every((e) => e.explainedBy === undefined)).toBe(true) // the real table expects none
  })
})

describe('the soak sampler and plot', () => {
  it('reads a metric, disk use and CPU time', async () => {
    expect(metricValue('# HELP x\nmeshsync_process_nodejs_heap_size_used_bytes 1234\nother 5\n', 'meshsync_process_nodejs_heap_size_used_bytes')).toBe(1234)
    expect(metricValue('a{b="c"} 7\n', 'a')).toBe(7)
    expect(metricValue('', 'a')).toBeNull()
    const dir = await mkdtemp(join(tmpdir(), 'meshsync-soak-'))
    try {
      await writeFile(join(dir, 'f'), Buffer.alloc(100_000, 1))
      expect(await diskUsage(dir)).toBeGreaterThanOrEqual(100_000)
      expect(await diskUsage(join(dir, 'missing'))).toBe(0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    expect(cpuSeconds(process.pid)).toBeGreaterThan(0)
    expect(cpuSeconds(2 ** 22 + 12345)).toBeUndefined()
  })

  it('draws a line per node, broken where a node was down, and a mark per fault', () => {
    const samples = [sample(0, 0, 1, 100e6), sample(0, MIN, 1, 110e6), sample(1, 0, 2, 90e6), sample(1, MIN, null, 0), sample(1, 2 * MIN, 3, 95e6), sample(1, 3 * MIN, 3, 96e6)]
    const faults: FaultEvent[] = [{ index: 0, kind: 'kill9-restart', nodes: [1], detail: '', injectedAt: 50_000, healedAt: 70_000 }]
    const svg = renderSvg(samples, faults, { title: 'soak <test>', durationMs: 3 * MIN })
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg).toContain('soak &lt;test&gt;')
    // RSS panel: node 0 one line, node 1 two (broken while down); 5 panels with a fault mark each.
    expect(svg.match(/<polyline/g)?.length).toBeGreaterThanOrEqual(3)
    expect(svg.match(/stroke="#d62728"/g)).toHaveLength(5)
  })
})
