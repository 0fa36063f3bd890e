import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const MAIN = join(import.meta.dirname, '..', '..', '..', 'scripts', 'chaos', 'main.ts')

function chaos(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('npm run chaos: options', () => {
  it('--help prints the usage and starts nothing', () => {
    const r = chaos('--help')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^usage: npm run chaos -- \[options\]/)
    expect(r.stdout).toContain('--backups S')
  })

  it.each([
    [['--bogus'], "chaos: Unknown option '--bogus'"],
    [['--nodes', 'x'], 'chaos: --nodes takes a positive integer, got "x"'],
    [['--duration', '0'], 'chaos: --duration takes a positive number, got "0"'],
    [['--seed=1.5'], 'chaos: --seed takes a non-negative integer, got "1.5"'],
    [['--backups=-3'], 'chaos: --backups takes a positive number, got "-3"'],
  ])('%j is refused in one line before anything starts, exit 2', (args, line) => {
    const r = chaos(...args)
    expect(r.status).toBe(2)
    expect(r.stderr.split('\n')[0]).toBe(line)
    expect(r.stderr).not.toMatch(/\n\s+at /) // no stack trace
    expect(r.stdout).toBe('')
  })
})
