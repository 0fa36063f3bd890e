import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { campaignTable, loadCampaign, runFigures, saveCampaign, type CampaignConfig, type CampaignRun } from '../../scripts/chaos/campaign-file.ts'
import type { ChaosReport } from '../../scripts/chaos/run.ts'

/** The campaign's results file: resumed only with the same settings, rewritten whole; its table. */

const config: CampaignConfig = { nodes: 5, durationS: 600, netns: true, faultMs: [2000, 12000], gapMs: [1000, 3000], clientsPerNode: 2, thinkMs: 15 }

const report = (seed: number, over: Partial<ChaosReport> = {}): ChaosReport =>
  ({
    ok: true,
    failures: [],
    seed,
    mode: 'netns',
    nodes: 5,
    durationS: 600,
    scheduleHash: 'abc',
    schedule: [],
    faults: Array.from({ length: 31 }, (_, i) => ({ index: i, kind: 'disk-full', nodes: [0], detail: '', injectedAt: i })),
    faultsByKind: { 'disk-full': 11, 'kill9-restart': 20 },
    workload: { attempted: 1000, acknowledged: 900, failed: 90, unknown: 10, reads: 5, staleReads: 0, byKind: {}, errors: { 'insert fail STORAGE_FULL': 40, 'patch fail STORAGE_FULL': 2, 'delete fail ENTITY_NOT_FOUND': 48 } },
    check: { ok: true, acknowledged: 900, lost: 0, lostSamples: [], phantoms: 0, phantomSamples: [], partialBatches: 0, divergent: false, divergenceSamples: [], conflictsIdentical: true, conflicts: 0, fingerprints: [], supersededByUnknown: 0 },
    convergence: { afterHeal: { n: 10, p50: 100, p99: 900, max: 1200 }, finalMs: 150, finalPerNode: { n: 5, p50: 1, p99: 2, max: 2 } },
    resources: [
      { node: 0, nodeId: 'a', starts: 1, maxRssMB: 300, finalRssMB: 200, maxFds: 40, finalFds: 30, maxDiskMB: 20, finalDiskMB: 18 },
      { node: 1, nodeId: 'b', starts: 2, maxRssMB: 350, finalRssMB: 200, maxFds: 42, finalFds: 30, maxDiskMB: 25, finalDiskMB: 20 },
    ],
    crashes: [],
    pendingYjs: 0,
    fingerprints: [],
    dataDir: '(removed)',
    elapsedS: 700,
    ...over,
  }) as ChaosReport

describe('campaign results file', () => {
  let dir: string | undefined
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('takes the figures of a report', () => {
    const run = runFigures(report(3))
    expect(run).toMatchObject({ seed: 3, ok: true, acknowledged: 900, refused: 90, refusedStorageFull: 42, lost: 0, faults: 31, maxRssMB: 350, maxFds: 42, maxDiskMB: 25, finalMs: 150 })
    expect(run.heal).toEqual({ n: 10, p50: 100, p99: 900, max: 1200 })
  })

  it('starts empty, keeps every saved run, and resumes only with the same settings', async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshsync-campaign-'))
    const path = join(dir, 'sub', 'campaign.json')
    const file = await loadCampaign(path, config)
    expect(file.runs).toEqual([])
    file.runs.push(runFigures(report(2)), runFigures(report(1)))
    await saveCampaign(path, file)
    const again = await loadCampaign(path, config)
    expect(again.runs.map((r) => r.seed)).toEqual([1, 2])
    expect(again.runs[1]).toEqual(runFigures(report(2)))
    await expect(loadCampaign(path, { ...config, durationS: 180 })).rejects.toThrow(/other settings.*--fresh/)
    expect((await loadCampaign(path, { ...config, durationS: 180 }, true)).runs).toEqual([])
    await writeFile(path, '{"config":')
    await expect(loadCampaign(path, config)).rejects.toThrow(/not a campaign results file/)
    expect(JSON.parse(await readFile(`${path}.tmp`, 'utf8').catch(() => '"gone"'))).toBe('gone')
  })

  it('marks failed runs and runs with too few faults in the table, and totals every run', () => {
    const split = { kind: {}, beforeNextFault: { n: 6, p50: 80, p99: 400, max: 500 }, intoNextFault: { n: 4, p50: 900, p99: 1200, max: 1200 } }
    const runs: CampaignRun[] = [
      runFigures(report(1, { convergence: { ...report(1).convergence, afterHealBy: split } })),
      runFigures(report(2, { ok: false, failures: ['3 acknowledged writes lost'], check: { ...report(2).check!, lost: 3 }, convergence: { ...report(2).convergence, finalMs: undefined } })),
      runFigures(report(3, { faults: [], faultsByKind: {} })),
    ]
    const table = campaignTable(runs, 30).split('\n')
    expect(table).toHaveLength(5)
    expect(table[1]).toMatch(/^\s+1 PASS\s+900\s+0\s+42\s+31 disk11 kill20\s+100\/900\/1200\s+80\/400\s+150\s+350\s+42\s+25\s+700$/)
    // A run from before the split was recorded shows a dash.
    expect(table[2]).toMatch(/^\s+2 FAIL\s+900\s+3 .*100\/900\/1200\s+-\s+never /)
    expect(table[3]).toMatch(/^\s+3 SHORT /)
    expect(table[4]).toContain('3 runs, 1 failed [2], 1 with fewer than 30 faults [3]')
    expect(table[4]).toContain('2700 acknowledged writes, 3 lost, 126 refused for a full disk; 62 faults (disk22 kill40)')
    expect(table[4]).toContain('never converged: [2]')
    expect(table[4]).toContain('worst max 1200 ms (catch-ups that ended before the next fault: worst p99 400 ms)')
  })
})
