import { spawn } from 'node:child_process'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { repoRoot } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/** docs/chaos.md: `npm run chaos` refuses --netns where it cannot run, and Ctrl-C leaves nothing behind. */

const tempDir = useTempDirs('all')

function chaos(args: readonly string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [join(repoRoot, 'scripts/chaos/main.ts'), ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  return { child, exited, out: () => stdout, err: () => stderr }
}

describe('npm run chaos', () => {
  it('--netns without ip and nft on the PATH is refused with one line, before anything starts', async () => {
    const emptyPath = await tempDir('meshsync-nopath-')
    const tmp = await tempDir('meshsync-chaos-tmp-')
    const run = chaos(['--netns', '--nodes', '1', '--duration', '5'], { ...process.env, PATH: emptyPath, TMPDIR: tmp })
    expect(await run.exited).toEqual({ code: 2, signal: null })
    expect(run.err().trim().split('\n')).toHaveLength(1)
    expect(run.err()).toMatch(/^chaos: --netns needs network namespaces and nftables: /)
    expect(run.out()).not.toMatch(/loopback/)
    expect(await readdir(tmp)).toEqual([])
  })

  it('Ctrl-C of a loopback run removes its data dirs and sockets', async () => {
    const tmp = await tempDir('meshsync-chaos-tmp-')
    const run = chaos(['--nodes', '1', '--duration', '60', '--report', join(tmp, 'report.json')], { ...process.env, TMPDIR: tmp })
    // Up once its daemon's socket exists in the run's data root.
    await waitFor(
      async () => {
        for (const root of (await readdir(tmp)).filter((n) => n.startsWith('meshsync-chaos-'))) {
          const nodes: string[] = await readdir(join(tmp, root)).catch(() => [])
          for (const node of nodes) {
            const files: string[] = await readdir(join(tmp, root, node)).catch(() => [])
            if (files.includes('api.sock')) return true
          }
        }
        return undefined
      },
      { timeout: 60_000, message: `the chaos run's daemon is up; output: ${run.out()}${run.err()}` },
    )
    run.child.kill('SIGINT')
    expect(await run.exited).toEqual({ code: 130, signal: null })
    expect((await readdir(tmp)).filter((n) => n.startsWith('meshsync-chaos-'))).toEqual([])
  })
})
