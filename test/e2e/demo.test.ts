import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { repoRoot } from '../helpers/daemon-process.ts'
import { waitFor } from '../helpers/wait-for.ts'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('npm run demo', () => {
  it('forms a 3-node cluster, converges, prints the dashboards, and stops everything on Ctrl-C', { timeout: 90_000 }, async () => {
    const child = spawn(process.execPath, [join(repoRoot, 'scripts', 'demo.ts'), '--burst', '1'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      await waitFor(() => out.includes('Ctrl-C to stop'), { timeout: 60_000, interval: 50, message: `the demo to reach its live phase; output:\n${out}` })
      expect(out).toMatch(/cluster formed in \d+ ms/)
      expect(out).toMatch(/converged in \d+ ms/)
      expect(out).toMatch(/backup: (skipped|done)/)
      const root = /data in (\S+)/.exec(out)?.[1] as string
      const pids = [...out.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]))
      expect(pids).toHaveLength(3)
      const urls = [...out.matchAll(/(http:\/\/127\.0\.0\.1:\d+)\/\?token=(\S+)/g)]
      expect(urls).toHaveLength(3)
      // The printed link signs a browser in.
      const [, base, token] = urls[0] as RegExpMatchArray
      const signIn = await fetch(`${base}/?token=${token}`, { redirect: 'manual' })
      expect(signIn.status).toBe(303)
      expect(signIn.headers.get('set-cookie')).toMatch(/HttpOnly/)

      child.kill('SIGINT')
      expect(await exited).toBe(0)
      expect(out).toContain('temp dirs removed')
      expect(existsSync(root)).toBe(false)
      for (const pid of pids) expect(alive(pid)).toBe(false)
    } finally {
      child.kill('SIGKILL')
    }
  })
})
