import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { meshsyncBin, repoRoot, startDaemon, stopAllDaemons } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

/** Runs `meshsync --help` with `env` on top of this environment (without a compile cache setting of its own). */
function runCli(env: Record<string, string>): void {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NODE_COMPILE_CACHE') && k !== 'NODE_DISABLE_COMPILE_CACHE'))
  const out = spawnSync(process.execPath, [meshsyncBin, '--help'], { cwd: repoRoot, env: { ...base, ...env }, encoding: 'utf8', timeout: 60_000 })
  expect(out.status, out.stderr).toBe(0)
}

const tempDir = useTempDirs()
const entries = (dir: string): string[] => readdirSync(dir, { recursive: true }) as string[]

afterEach(stopAllDaemons)

describe('compile cache', () => {
  it("keeps V8's compiled modules in <tmpdir>/node-compile-cache, unless NODE_DISABLE_COMPILE_CACHE is set", async () => {
    const tmp = await tempDir('meshsync-compile-cache-')
    runCli({ TMPDIR: tmp })
    const cached = entries(join(tmp, 'node-compile-cache'))
    // meshsync's own modules and its dependencies': many files.
    expect(cached.length).toBeGreaterThan(50)

    const off = await tempDir('meshsync-compile-cache-off-')
    runCli({ TMPDIR: off, NODE_DISABLE_COMPILE_CACHE: '1' })
    expect(readdirSync(off)).not.toContain('node-compile-cache')
  })

  it('is written once the modules are loaded, so a daemon killed with SIGKILL leaves it too', async () => {
    const tmp = await tempDir('meshsync-compile-cache-kill-')
    const daemon = await startDaemon({ env: { TMPDIR: tmp } })
    daemon.kill('SIGKILL')
    await daemon.exited
    expect(entries(join(tmp, 'node-compile-cache')).length).toBeGreaterThan(50)
  })
})
