import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

/**
 * The repository stands alone: on a fresh clone, tests, bench, scripts and the product read
 * nothing beside it (the editing traces are fixtures/editing-traces/). A static scan of every
 * source file for paths that leave the repository: a relative path (import or file path) that
 * climbs above the root, a `..` joined onto the root, or a folder named `shared` next to it.
 */

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url))
/** This file: its planted escapes below are the scan's own test, not reads. */
const self = fileURLToPath(import.meta.url)

/** Folders scanned (relative to the root), and the source files in them. */
const SCANNED = ['bin', 'crdt', 'transport', 'daemon', 'scripts', 'test', 'bench', '.ci']
const SOURCE = /\.(ts|mts|cts|js|mjs|cjs|sh)$|^run$/
const SKIPPED = new Set(['node_modules', 'peers', 'results'])

function sourceFiles(dir: string): string[] {
  let entries
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return []
  }
  return entries.flatMap((e) => {
    if (e.isDirectory()) return SKIPPED.has(e.name) ? [] : sourceFiles(join(dir, e.name))
    return SOURCE.test(e.name) ? [join(dir, e.name)] : []
  })
}

/** How many folders below the root `file` sits (`test/e2e/x.ts`: 2). */
function depthOf(file: string): number {
  return file.split('/').length - 1
}

/** Counts the leading `..` segments of a relative path (`../../x`: 2; `./x`: 0). */
function ups(path: string): number {
  let n = 0
  for (const segment of path.split('/')) {
    if (segment === '..') n++
    else if (segment !== '.') break
  }
  return n
}

/**
 * Every place in `text` (the contents of `file`, a path relative to the root with `/`
 * separators) that reaches outside the repository, as `line N: what`.
 */
export function escapesOf(file: string, text: string): string[] {
  const found: string[] = []
  const depth = depthOf(file)
  const lines = text.split('\n')
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`
    // A folder named `shared` beside the repository, or its data, however spelled.
    if (/\.\.[/\\]shared\b|\bshared[/\\]data\b|['"]shared['"]\s*,\s*['"]data['"]/.test(line)) found.push(`${at}: names a shared folder outside the repository: ${line.trim()}`)
    // A relative path literal (import specifier, `new URL(…, import.meta.url)`, a file path)
    // that climbs above the root from this file's folder.
    for (const m of line.matchAll(/(['"`])(\.\.(?:\/[^'"`]*)?)\1/g)) {
      const path = m[2] as string
      if (ups(path) > depth) found.push(`${at}: ${path} climbs ${ups(path)} folders from ${file} (${depth} below the root)`)
    }
    // `..` segments joined onto the root or onto this file's folder: resolve(repoRoot, '..', …).
    for (const m of line.matchAll(/\b(?:resolve|join)\(\s*(import\.meta\.dirname|__dirname|repoRoot|REPO_ROOT|root)\s*,([^)]*)\)/g)) {
      const base = m[1] === 'import.meta.dirname' || m[1] === '__dirname' ? depth : 0
      let climbed = 0
      for (const arg of (m[2] as string).split(',')) {
        const literal = /^\s*['"`]([^'"`]*)['"`]\s*$/.exec(arg)?.[1]
        if (literal === undefined) break
        const n = ups(literal)
        climbed += n
        if (n === 0 || literal.replace(/^(\.\.\/?)+/, '') !== '') break
      }
      if (climbed > base) found.push(`${at}: ${m[0]} climbs ${climbed} folders from ${base === 0 ? 'the root' : file}`)
    }
  })
  return found
}

describe('the repository stands alone', () => {
  it('no test, script, bench or product file reads a path outside the repository', () => {
    const files = SCANNED.flatMap((dir) => sourceFiles(join(repoRoot, dir))).filter((f) => f !== self)
    // The scan sees the code it is meant to: the product, the tests and the scripts.
    expect(files.length).toBeGreaterThan(200)
    for (const dir of ['daemon', 'test', 'scripts']) expect(files.some((f) => relative(repoRoot, f).startsWith(dir + sep))).toBe(true)
    const escapes = files.flatMap((f) => {
      const rel = relative(repoRoot, f).split(sep).join('/')
      return escapesOf(rel, readFileSync(f, 'utf8')).map((e) => `${rel} ${e}`)
    })
    expect(escapes).toEqual([])
  })

  describe('the scan catches a planted escape', () => {
    const shared = ['..', 'shared', 'data', 'editing-traces'].join('/')
    it.each([
      ['a path into a shared folder beside the repository', 'test/e2e/x.test.ts', `const T = resolve(repoRoot, '${shared}/a.json.gz')`],
      ['shared/data joined in parts', 'scripts/bench/x.ts', `const D = resolve(REPO_ROOT, 'fixtures', 'shared', 'data')`],
      ['the root climbed out of with join', 'scripts/bench/x.ts', `const D = resolve(REPO_ROOT, '..', 'elsewhere')`],
      ['a file folder climbed past the root', 'scripts/bench/x.ts', `const D = resolve(import.meta.dirname, '..', '..', '..', 'data')`],
      ['an import from above the root', 'test/unit/x.test.ts', `import { x } from '../../../../other/x.ts'`],
      ['a URL relative to the file, above the root', 'daemon/x.ts', `const u = new URL('../../data', import.meta.url)`],
    ])('%s', (_what, file, line) => {
      expect(escapesOf(file, line).length).toBeGreaterThan(0)
    })

    it.each([
      ['an import inside the repository', 'test/unit/x/y.test.ts', `import { x } from '../../../daemon/x.ts'`],
      ['the root found from a file', 'scripts/bench/x.ts', `const R = resolve(import.meta.dirname, '..', '..')`],
      ['a fixture under the root', 'test/e2e/x.test.ts', `const T = resolve(repoRoot, 'fixtures/editing-traces/a.json.gz')`],
    ])('and leaves alone %s', (_what, file, line) => {
      expect(escapesOf(file, line)).toEqual([])
    })
  })
})
