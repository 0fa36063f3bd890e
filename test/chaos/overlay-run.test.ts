import { describe, expect, it } from 'vitest'
import { runChaos, summarize } from '../../scripts/chaos/run.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

/**
 * The CI chaos run of the overlay (docs/chaos.md): 9 daemons on loopback, each keeping 3-4
 * connections (not all 8), 90 s of writes under kill -9, SIGSTOP and kill-neighbourhood faults (every
 * peer of one node killed at once, so it is left alone and the restarted ones must find the
 * cluster again from the members they remember). Seed 5 schedules 3 neighbourhood kills. Fails on
 * any lost write, divergence or crash; no root needed.
 */

const seed = Number(process.env.MESHSYNC_OVERLAY_CHAOS_SEED ?? 5)

describe('chaos: 9 daemons in a bounded-degree overlay', () => {
  const tempDir = useTempDirs('all')
  it('kills of whole neighbourhoods lose no acknowledged write and converge', { timeout: 600_000 }, async () => {
    const report = await runChaos({
      dataRoot: await tempDir('meshsync-chaos-'),
      nodes: 9,
      durationS: 90,
      seed,
      netns: false,
      kinds: ['kill9-restart', 'sigstop', 'kill-neighbourhood'],
      clientsPerNode: 1,
      thinkMs: 150,
      reportPath: `tmp/chaos/overlay-report-seed${seed}.json`,
      log: () => undefined,
    })
    console.log(summarize(report))
    expect(report.failures).toEqual([])
    expect(report.check?.lost).toBe(0)
    expect(report.check?.divergent).toBe(false)
    expect(report.crashes).toEqual([])
    const hoods = report.faults.filter((f) => f.kind === 'kill-neighbourhood')
    expect(hoods.length).toBeGreaterThanOrEqual(1)
    // Each killed a neighbourhood: some peers, never the whole cluster but the node at its centre.
    for (const f of hoods) {
      expect(f.nodes.length).toBeGreaterThanOrEqual(1)
      expect(f.nodes.length).toBeLessThanOrEqual(7)
    }
    expect(report.workload.acknowledged).toBeGreaterThanOrEqual(500)
    expect(report.ok).toBe(true)
  })
})
