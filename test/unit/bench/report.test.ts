import { readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { BenchEnvironment } from '../../../scripts/bench/env.ts'
import { writeResults, type Outcome, type RunSummary } from '../../../scripts/bench/report.ts'
import { summarize } from '../../../scripts/bench/stats.ts'
import { ratioAtMostFigure, ratioFigure, unavailableFigure } from '../../../scripts/bench/types.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'

const environment = { node: 'v24', cores: 2 } as unknown as BenchEnvironment

const outcomes: Outcome[] = [
  {
    ok: true,
    result: {
      name: 'alpha',
      title: 'alpha bench',
      params: { n: 1 },
      figures: [
        { label: 'ops/s', unit: 'ops/s', summary: summarize([10, 30, 20]) },
        ratioFigure('ratio high', summarize([0.6, 0.4, 0.7]), 0.5),
        ratioAtMostFigure('ratio low', summarize([4, 2, 3]), 2.5),
        unavailableFigure('peer ratio', 'x', 'peer not installed', { atMost: 0.2 }),
      ],
    },
  },
  { ok: false, failure: { name: 'beta', title: 'beta bench', error: 'check failed: 3 of 4 nodes converged' } },
]

describe('bench: result files', () => {
  const makeTempDir = useTempDirs()

  it('writes one file per benchmark and the run summary, which holds the table as data and every target met or missed', async () => {
    const dir = await makeTempDir()
    const date = new Date('2026-11-28T03:04:05.678Z')
    const files = await writeResults(dir, date, environment, { runs: 3 }, outcomes)
    expect(files.map((f) => basename(f))).toEqual(['2026-11-28T03-04-05.678Z.json', '2026-11-28T03-04-05.678Z-alpha.json', '2026-11-28T03-04-05.678Z-beta.json'])

    const summary = JSON.parse(await readFile(join(dir, '2026-11-28T03-04-05.678Z.json'), 'utf8')) as RunSummary
    expect(summary.date).toBe(date.toISOString())
    expect(summary.options).toEqual({ runs: 3 })
    // ratio high: median 0.6 >= 0.5 met; ratio low: median 3 > 2.5 missed; the unmeasured one and the failed benchmark count as missed.
    expect(summary.targets).toEqual({ met: 1, missed: ['alpha: ratio low', 'alpha: peer ratio', 'beta: failed'] })
    const [alpha, beta] = summary.benchmarks
    expect(alpha).toMatchObject({ name: 'alpha', ok: true, file: '2026-11-28T03-04-05.678Z-alpha.json' })
    expect(alpha?.ok && alpha.figures[0]).toEqual({ label: 'ops/s', unit: 'ops/s', median: 20, min: 10, max: 30 })
    expect(alpha?.ok && alpha.figures[1]).toEqual({ label: 'ratio high', unit: 'x', median: 0.6, min: 0.4, max: 0.7, target: { atLeast: 0.5, met: true } })
    expect(alpha?.ok && alpha.figures[3]).toEqual({ label: 'peer ratio', unit: 'x', unavailable: 'peer not installed', target: { atMost: 0.2, met: false } })
    expect(beta).toEqual({ name: 'beta', ok: false, file: '2026-11-28T03-04-05.678Z-beta.json', error: 'check failed: 3 of 4 nodes converged' })

    const detail = JSON.parse(await readFile(files[1] as string, 'utf8')) as { benchmark: string; result: { params: unknown; figures: { summary: { runs: number[] } }[] } }
    expect(detail.benchmark).toBe('alpha')
    expect(detail.result.params).toEqual({ n: 1 })
    expect(detail.result.figures[0]?.summary.runs).toEqual([10, 30, 20])
  })
})
