import { readFile } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { startDaemon, stopAllDaemons } from '../helpers/daemon-process.ts'

/** The command line the process with `pid` runs now (after any exec). */
async function commandLine(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((arg) => arg.length > 0)
}

afterEach(stopAllDaemons)

describe('the V8 flags of meshsync start', () => {
  it('restarts the same process (same pid) with MESHSYNC_V8_FLAGS before its script, once', async () => {
    const daemon = await startDaemon({ env: { MESHSYNC_V8_FLAGS: '--single-threaded --stack-size=2000' } })
    const args = await commandLine(daemon.pid)
    expect(args.slice(1, 4)).toEqual(['--single-threaded', '--stack-size=2000', expect.stringMatching(/bin\/meshsync\.mjs$/)])
    expect(args[4]).toBe('start')
    // It answers from the restarted process, the pid the test spawned.
    expect((await daemon.sock('GET', '/v1/status')).status).toBe(200)
    expect(daemon.info.pid).toBe(daemon.pid)
  })

  it('runs with none when MESHSYNC_V8_FLAGS is empty', async () => {
    const daemon = await startDaemon({ env: { MESHSYNC_V8_FLAGS: '' } })
    const args = await commandLine(daemon.pid)
    expect(args[1]).toMatch(/bin\/meshsync\.mjs$/)
    expect((await daemon.sock('GET', '/v1/status')).status).toBe(200)
  })
})
