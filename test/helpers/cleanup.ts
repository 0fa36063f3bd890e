import { afterAll } from 'vitest'
import { stopAllDaemons } from './daemon-process.ts'
import { removeTempDirs } from './temp-dir.ts'

/**
 * Set up before every test file (vitest.config.ts, setupFiles): once the file's own hooks ran
 * (after-hooks run in reverse order, and this one is registered first), every daemon it started
 * is stopped and every temp dir it made is removed, whether its tests passed or not. A full run
 * leaves nothing in the OS temp dir.
 */
afterAll(async () => {
  await stopAllDaemons()
  await removeTempDirs()
})
