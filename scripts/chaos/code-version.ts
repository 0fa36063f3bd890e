import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { repoRoot } from './cluster.ts'

/**
 * Which code a chaos run's daemons ran. The harness starts (and, after kill -9 or a restart of
 * every node, restarts) the daemons from this checkout, so edits made while a run goes on would
 * mix code versions in one run: the campaign records the version per run and voids a run during
 * which it changed.
 */
export interface CodeVersion {
  readonly commit: string
  /** Daemon sources that differ from the commit (empty: clean). */
  readonly dirty: readonly string[]
  /** Digest of those differences, so that a further edit to an already dirty file is seen too. */
  readonly diffDigest: string
}

/** The daemon's sources (what a restarted daemon loads) and what decides its dependencies. */
const DAEMON_PATHS = ['bin', 'crdt', 'daemon', 'transport', 'package.json', 'package-lock.json']

function git(root: string, args: readonly string[]): string {
  return execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
}

/** The checkout's version, or undefined outside a git checkout. */
export function codeVersion(root: string = repoRoot): CodeVersion | undefined {
  try {
    const commit = git(root, ['rev-parse', 'HEAD']).trim()
    const dirty = git(root, ['status', '--porcelain', '--', ...DAEMON_PATHS])
      .split('\n')
      .filter((line) => line.length > 3)
      .map((line) => line.slice(3))
    const digest = createHash('sha256').update(git(root, ['diff', 'HEAD', '--', ...DAEMON_PATHS]))
    for (const path of dirty) digest.update(path)
    return { commit, dirty, diffDigest: digest.digest('hex').slice(0, 16) }
  } catch {
    return undefined
  }
}

export function sameVersion(a: CodeVersion | undefined, b: CodeVersion | undefined): boolean {
  return a?.commit === b?.commit && a?.diffDigest === b?.diffDigest
}
