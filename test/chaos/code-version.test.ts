import { execFileSync } from 'node:child_process'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { codeVersion, sameVersion } from '../../scripts/chaos/code-version.ts'

/** The campaign voids a run during which the daemon code changed; this is how it tells. */
describe('chaos code version', () => {
  let dir: string | undefined
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true })
  })
  const git = (...args: string[]): void => {
    execFileSync('git', ['-C', dir as string, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { stdio: 'ignore' })
  }

  it('sees a commit, an edit, a further edit of a dirty file, a new file; ignores files the daemon does not load', async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshsync-codeversion-'))
    git('init', '-q')
    await mkdir(join(dir, 'daemon'))
    await writeFile(join(dir, 'daemon', 'a.ts'), 'one')
    await writeFile(join(dir, 'README.md'), 'docs')
    git('add', '-A')
    git('commit', '-q', '-m', 'first')
    const clean = codeVersion(dir)
    expect(clean?.dirty).toEqual([])

    await writeFile(join(dir, 'README.md'), 'docs changed')
    expect(sameVersion(clean, codeVersion(dir))).toBe(true)

    await writeFile(join(dir, 'daemon', 'a.ts'), 'two')
    const edited = codeVersion(dir)
    expect(edited?.dirty).toEqual(['daemon/a.ts'])
    expect(sameVersion(clean, edited)).toBe(false)

    await writeFile(join(dir, 'daemon', 'a.ts'), 'three')
    const editedAgain = codeVersion(dir)
    expect(sameVersion(edited, editedAgain)).toBe(false)

    await writeFile(join(dir, 'daemon', 'b.ts'), 'new')
    expect(codeVersion(dir)?.dirty).toEqual(['daemon/a.ts', 'daemon/b.ts'])

    git('add', '-A')
    git('commit', '-q', '-m', 'second')
    const next = codeVersion(dir)
    expect(next?.dirty).toEqual([])
    expect(next?.commit).not.toBe(clean?.commit)
    expect(sameVersion(clean, next)).toBe(false)
  })

  it('is undefined outside a git checkout', async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshsync-codeversion-'))
    expect(codeVersion(dir)).toBeUndefined()
  })
})
