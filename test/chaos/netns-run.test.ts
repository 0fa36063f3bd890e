import { describe, expect, it } from 'vitest'
import { tmpfsUnavailable } from '../../scripts/chaos/disks.ts'
import { netnsUnavailable } from '../../scripts/chaos/netns.ts'
import { runChaos, summarize } from '../../scripts/chaos/run.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

/**
 * The CI chaos run (issue 6): 5 real daemons, each in its own network namespace on one bridge,
 * about 3 minutes of workload under a seeded schedule of mixed faults (partitions, one-way cuts,
 * majority rings, packet loss, link down, a full data disk (each node's data dir is a small tmpfs),
 * kill -9, SIGSTOP, restart of every node), with a backup taken through a daemon every 5 s
 * (files and entity sets in turn), then heal, convergence, the checker and a deep verify of every
 * backup. Fails on any lost write, divergence, crash or backup that does not verify. Needs root (network namespaces, nftables, tmpfs mounts);
 * skipped with the reason otherwise. Seed 6 schedules 24 faults of all 10 kinds, 2 of them full
 * disks (a seed given in MESHSYNC_CHAOS_SEED must schedule a full disk too).
 */

const skip = netnsUnavailable() ?? tmpfsUnavailable()
if (skip) console.warn(`chaos netns run: skipped: ${skip}`)
const seed = Number(process.env.MESHSYNC_CHAOS_SEED ?? 6)

describe('chaos: 5 daemons in network namespaces', () => {
  // The run's data dir (kept by a failed run) goes in a temp dir removed after the file.
  const tempDir = useTempDirs('all')
  it.skipIf(skip !== undefined)(`3 minutes of faults lose no acknowledged write and converge${skip ? ` (skipped: ${skip})` : ''}`, { timeout: 600_000 }, async () => {
    // A moderate write rate (about 50/s over the cluster): enough for thousands of acknowledged
    // writes, light enough to share the machine with the rest of the suite.
    // A backup every 5 s through a daemon (files and incremental entity sets in turn): a files
    // backup closes and reopens LevelDB under the workload and the faults.
    const report = await runChaos({ dataRoot: await tempDir('meshsync-chaos-'), nodes: 5, durationS: 170, seed, netns: true, clientsPerNode: 1, thinkMs: 60, backupEveryMs: 5000, reportPath: `tmp/chaos/ci-report-seed${seed}.json`, log: () => undefined })
    console.log(summarize(report))
    expect(report.mode).toBe('netns')
    expect(report.failures).toEqual([])
    expect(report.check?.lost).toBe(0)
    expect(report.check?.divergent).toBe(false)
    expect(report.crashes).toEqual([])
    expect(report.faults.length).toBeGreaterThanOrEqual(15)
    expect(Object.keys(report.faultsByKind).length).toBeGreaterThanOrEqual(5)
    // The full disk bit: writes were refused with STORAGE_FULL (not acknowledged), and the
    // node went on afterwards (it converged with the others and lost nothing).
    expect(report.faultsByKind['disk-full']).toBeGreaterThanOrEqual(1)
    expect(Object.entries(report.workload.errors).filter(([k]) => k.endsWith(' fail STORAGE_FULL')).reduce((a, [, v]) => a + v, 0)).toBeGreaterThan(0)
    expect(report.workload.acknowledged).toBeGreaterThanOrEqual(2000)
    // Backups were taken under the faults, of both kinds, and every one verifies.
    expect(report.backups?.taken.files).toBeGreaterThanOrEqual(3)
    expect(report.backups?.taken.entities).toBeGreaterThanOrEqual(3)
    expect(report.backups?.corrupt).toEqual([])
    // Every set answered as taken was read back (and any a kill -9 cut off after it was published).
    expect(report.backups?.verified).toBeGreaterThanOrEqual((report.backups?.taken.files ?? 0) + (report.backups?.taken.entities ?? 0))
    expect(report.ok).toBe(true)
  })
})
