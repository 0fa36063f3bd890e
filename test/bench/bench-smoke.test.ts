import { execFile, spawnSync } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { RunSummary } from '../../scripts/bench/report.ts'
import { repoRoot } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

const exec = promisify(execFile)

/** The backup benchmark's baseline is `tar | zstd`; .ci/run installs zstd, elsewhere it may be missing. */
const hasZstd = spawnSync('zstd', ['--version'], { stdio: 'ignore' }).status === 0

/**
 * `npm run bench` end to end at small sizes, so that the suite cannot rot between full runs:
 * every benchmark runs in a process of its own, checks its result (counts, values, restored
 * stores) before it reports, and the run writes each benchmark's file and its summary. Times
 * and targets are not asserted: on a loaded CI machine they mean nothing.
 */
describe('npm run bench, small sizes', () => {
  const makeTempDir = useTempDirs('all')

  it('runs the batch, large-text and backup benchmarks with every check passing, and writes their files and the run summary', async () => {
    const out = await makeTempDir('bench-out-')
    const data = await makeTempDir('bench-data-')
    const only = ['batch-writes', 'large-text-edits', ...(hasZstd ? ['backup'] : [])]
    const args = ['scripts/bench/run.ts', '--only', only.join(','), '--runs', '1', '--records', '2000', '--edits', '50', '--backup-entities', '2000', '--dir', data, '--out', out]
    await exec(process.execPath, args, { cwd: repoRoot, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 })

    const files = (await readdir(out)).sort()
    const summaryName = files.find((f) => /^\d{4}-\d\d-\d\dT[\d-]+\.\d+Z\.json$/.test(f))
    expect(summaryName).toBeDefined()
    const summary = JSON.parse(await readFile(join(out, summaryName as string), 'utf8')) as RunSummary
    expect(summary.benchmarks.map((b) => [b.name, b.ok]).sort()).toEqual(only.map((name) => [name, true]).sort())
    for (const b of summary.benchmarks) {
      expect(files).toContain(b.file)
      expect(b.ok && b.figures.length).toBeGreaterThan(3)
    }
    // Every figure has a number or says why there is none (restic may be missing).
    for (const b of summary.benchmarks) {
      for (const f of b.ok ? b.figures : []) expect(f.median !== undefined || f.unavailable !== undefined).toBe(true)
    }
    const backup = summary.benchmarks.find((b) => b.name === 'backup')
    if (backup?.ok) {
      const labels = backup.figures.map((f) => f.label)
      expect(labels).toContain('ratio tar | zstd / that read (the most an entity full could reach)')
      expect(labels).toContain('files restore speed / zstd -d | tar -x speed')
    }
  }, 300_000)
})
