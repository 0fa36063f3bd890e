import { mkdir, stat } from 'node:fs/promises'
import { dirname } from 'node:path'

/**
 * `mkdir -p` that never loops: Node's recursive mkdir retries forever on some paths (one under
 * `/proc/self` answers ENOENT to every attempt). Each missing level is made once, parent first;
 * a level that cannot be made fails the call.
 */
export async function makeDirs(dir: string, mode?: number): Promise<void> {
  const missing: string[] = []
  let current = dir
  for (;;) {
    let isDirectory: boolean
    try {
      isDirectory = (await stat(current)).isDirectory()
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause
      const parent = dirname(current)
      if (parent === current) break
      missing.push(current)
      current = parent
      continue
    }
    // A file where the directory should be: mkdir says so (EEXIST); one above it fails below (ENOTDIR).
    if (!isDirectory && current === dir) await mkdir(dir, mode)
    break
  }
  for (const level of missing.reverse()) {
    try {
      await mkdir(level, mode)
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw cause
    }
  }
}

