import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { CheckFailed } from '../../../scripts/bench/checks.ts'
import { formatTable } from '../../../scripts/bench/report.ts'
import { processRss } from '../../../scripts/bench/startup-memory.ts'
import { summarize } from '../../../scripts/bench/stats.ts'
import { loadTrace, rawYjs } from '../../../scripts/bench/text-trace.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'

/** The parts of the text-trace and startup-memory benchmarks that decide what they report. */
describe('bench: text trace', () => {
  const makeTempDir = useTempDirs()

  async function writeTrace(dir: string, name: string, trace: unknown): Promise<void> {
    await writeFile(join(dir, `${name}.json.gz`), gzipSync(JSON.stringify(trace)))
  }

  it('loads a trace with every transaction\'s patches in order, and the raw Yjs baseline reproduces endContent', async () => {
    const dir = await makeTempDir()
    await writeTrace(dir, 't', { startContent: '', endContent: 'hXllo!', txns: [{ patches: [[0, 0, 'hello']] }, { patches: [[1, 1, 'X'], [5, 0, '!']] }] })
    const trace = await loadTrace('t', dir)
    expect(trace.patches).toEqual([[0, 0, 'hello'], [1, 1, 'X'], [5, 0, '!']])
    expect(trace.startContent).toBe('')
    expect(rawYjs(trace).stateBytes).toBeGreaterThan(0)
  })

  it('the baseline fails (a fast wrong answer) when the patches do not make endContent', () => {
    expect(() => rawYjs({ startContent: '', endContent: 'hello', patches: [[0, 0, 'help']] })).toThrow(CheckFailed)
  })

  it('refuses a trace with astral characters (code point positions would not be UTF-16 positions)', async () => {
    const dir = await makeTempDir()
    await writeTrace(dir, 'astral', { endContent: 'a😀', txns: [{ patches: [[0, 0, 'a😀']] }] })
    await expect(loadTrace('astral', dir)).rejects.toThrow(/astral/)
  })
})

describe('bench: resident memory and absolute targets', () => {
  it.runIf(process.platform === 'linux')('reads RSS, its peak and its private and file-backed parts from /proc', () => {
    const rss = processRss(process.pid)
    expect(rss).not.toBeNull()
    const r = rss as NonNullable<typeof rss>
    expect(r.rssMb).toBeGreaterThan(1)
    expect(r.peakMb).toBeGreaterThanOrEqual(r.rssMb)
    // RssAnon + RssFile + RssShmem = VmRSS
    expect(r.anonMb + r.fileMb).toBeLessThanOrEqual(r.rssMb + 0.01)
    expect(r.anonMb + r.fileMb).toBeGreaterThan(r.rssMb / 2)
  })

  it('is null for a process that does not exist', () => {
    expect(processRss(2 ** 22 + 1)).toBeNull()
  })

  it('shows an absolute target in the figure\'s unit and a ratio target in x', () => {
    const table = formatTable([
      {
        ok: true,
        result: {
          name: 'b',
          title: 't',
          params: {},
          figures: [
            { label: 'start', unit: 's', summary: summarize([6, 7]), target: { atMost: 5, met: false } },
            { label: 'peak', unit: 'MB', summary: summarize([200]), target: { atMost: 300, met: true } },
            { label: 'ratio', unit: 'x', summary: summarize([2]), target: { atMost: 3, met: true } },
          ],
        },
      },
    ])
    expect(table).toMatch(/start .* <= 5 s MISSED/)
    expect(table).toMatch(/peak .* <= 300 MB met/)
    expect(table).toMatch(/ratio .* <= 3x met/)
  })
})
