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
    try {
      if ((await stat(current)).isDirectory()) break
      throw Object.assign(new Error(`${current} is not a directory`), { code: 'ENOTDIR' })
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause
      const parent = dirname(current)
      if (parent === current) break
      missing.push(current)
      current = parent
    }
  }
  for (const level of missing.reverse()) {
    try {
      await mkdir(level, mode)
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw cause
    }
  }
}

