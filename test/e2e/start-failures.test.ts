import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { meshsyncBin } from '../helpers/daemon-process.ts'
import { runProcess } from '../helpers/run-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

/**
 * Every start that cannot go on ends with one line naming what is wrong and its code, and no
 * stack trace or log line (docs/cli.md, start). (A taken port and the cluster key files are in
 * cli.test.ts.)
 */

const tempDir = useTempDirs()

/** 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine. */
const NOT_HERE = '192.0.2.1'

function start(args: readonly string[]): ReturnType<typeof runProcess> {
  // The guard (60 s) is against a start that did not fail and would run on: not a speed check.
  return runProcess(process.execPath, [meshsyncBin, 'start', '--no-mdns', '--api-port', '0', ...args])
}

describe('a start that cannot go on', () => {
  it('says why in one line with a code', { timeout: 120_000 }, async () => {
    const dir = await tempDir('meshsync-start-')
    const aFile = join(dir, 'a-file')
    await writeFile(aFile, 'not a directory')
    const cases: [string[], string, string][] = [
      [['--data-dir', '/proc/self/meshsync'], 'DATA_DIR_UNUSABLE', 'cannot use /proc/self/meshsync as the data dir'],
      [['--data-dir', aFile], 'DATA_DIR_UNUSABLE', `cannot use ${aFile} as the data dir`],
      [['--data-dir', join(dir, 'd1'), '--listen', '/ip4/1.2.3/tcp/1'], 'CONFIG_INVALID', '--listen: /ip4/1.2.3/tcp/1 is not a multiaddr'],
      [['--data-dir', join(dir, 'd2'), '--listen', `/ip4/${NOT_HERE}/tcp/4999`], 'CONFIG_INVALID', `cannot listen on p2p address /ip4/${NOT_HERE}/tcp/4999: not an address of this machine`],
      [['--data-dir', join(dir, 'd3'), '--listen', '/ip4/127.0.0.1/tcp/0', '--api-host', NOT_HERE], 'CONFIG_INVALID', `cannot listen on API address ${NOT_HERE}:0: not an address of this machine`],
      [['--data-dir', join(dir, 'd4'), '--log-level', 'loud'], 'CONFIG_INVALID', '--log-level: "loud" is not a log level'],
    ]
    const results = await Promise.all(cases.map(([args]) => start(args)))
    results.forEach((r, i) => {
      const [, code, text] = cases[i] as [string[], string, string]
      expect(r.code, r.stderr).toBe(1)
      expect(r.stdout).toBe('')
      expect(r.stderr.split('\n').filter((l) => l !== ''), r.stderr).toHaveLength(1)
      expect(r.stderr).toContain(text)
      expect(r.stderr).toMatch(new RegExp(`\\(${code}\\)\\n$`))
    })
  })
})
