import { spawn } from 'node:child_process'
import { watch } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { meshsyncBin, repoRoot } from '../helpers/daemon-process.ts'
import { makeTempDir } from '../helpers/temp-dir.ts'

/** Starts a daemon and sends SIGTERM the instant its daemon.json appears (fs.watch, no polling). */
async function termWhenReady(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const dataDir = await makeTempDir('meshsync-e2e-')
  const watcher = watch(dataDir)
  const child = spawn(process.execPath, [meshsyncBin, 'start', '--data-dir', dataDir, '--api-port', '0', '--no-mdns', '--log-level', 'warn', '--listen', '/ip4/127.0.0.1/tcp/0'], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  let sent = false
  watcher.on('change', (_event, name) => {
    // Once: a second signal means "stop now" (exit 130).
    if (name === 'daemon.json' && !sent) sent = child.kill('SIGTERM')
  })
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])))
  watcher.close()
  return { code, signal, stderr }
}

describe('daemon shutdown', () => {
  it('a SIGTERM the instant daemon.json appears still shuts the daemon down cleanly', async () => {
    for (let i = 0; i < 3; i++) expect(await termWhenReady()).toEqual({ code: 0, signal: null, stderr: '' })
  })
})
