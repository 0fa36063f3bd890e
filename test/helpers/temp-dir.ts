import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach } from 'vitest'

const made = new Set<string>()

/**
 * A fresh directory under the OS temp dir. Kept short: a Unix socket path inside it must stay
 * under the 107-byte limit of `sun_path`.
 */
export async function makeTempDir(prefix = 'meshsync-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  made.add(dir)
  return dir
}

/** Removes every directory {@link makeTempDir} made that is still there. */
export async function removeTempDirs(): Promise<void> {
  const dirs = [...made]
  made.clear()
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 3 })))
}

// A test process that exits before its hooks ran (a crash, a timeout in a hook) still removes them.
process.once('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
})

/**
 * Registers the clean-up hook in the current scope (`each`: after every test; `all`: after the
 * file or the surrounding describe) and returns {@link makeTempDir}.
 */
export function useTempDirs(scope: 'each' | 'all' = 'all'): (prefix?: string) => Promise<string> {
  if (scope === 'each') afterEach(removeTempDirs)
  else afterAll(removeTempDirs)
  return makeTempDir
}
