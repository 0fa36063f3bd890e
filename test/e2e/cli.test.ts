import { execFileSync, spawn } from 'node:child_process'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { joinArgs } from '../helpers/cluster.ts'
import { meshsyncBin, repoRoot, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { abortWait, waitFor } from '../helpers/wait-for.ts'
import { cliEnv, runCli } from '../helpers/run-process.ts'

/** The CLI of docs/cli.md as a user runs it: a process per command, against a running daemon. */

// The 60 s guard against a hang is not a speed check: 8 CLI processes start at once in one
// test, and on a loaded 2-core machine one took more than 20 s.
const cli = runCli

const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '')

/** An older Node than meshsync supports (the machine's system node), if there is one. */
function findOldNode(): string | undefined {
  for (const candidate of ['/usr/local/bin/node', '/usr/bin/node', '/bin/node']) {
    try {
      const version = execFileSync(candidate, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim()
      const major = Number(/^v(\d+)\./.exec(version)?.[1])
      if (major > 0 && major < 22) return candidate
    } catch {
      // not there
    }
  }
  return undefined
}

describe('CLI', () => {
  const tempDir = useTempDirs('all')
  let d: DaemonHandle
  let dir: string[]

  beforeAll(async () => {
    d = await startDaemon()
    dir = ['--data-dir', d.dataDir]
  })

  afterAll(async () => {
    await d?.stop()
    await stopAllDaemons()
  })

  it('put / get / patch / del, with and without --json', async () => {
    const put = await cli(['put', 'cli', 'e1', '{"a":1,"b":"two"}', ...dir])
    expect(put).toMatchObject({ code: 0, stderr: '' })
    expect(JSON.parse(put.stdout)).toMatchObject({ ns: 'cli', id: 'e1', value: { a: 1, b: 'two' } })

    const putJson = await cli(['put', 'cli', 'e2', '--json', ...dir], { input: '{"from":"stdin"}' })
    expect(putJson).toMatchObject({ code: 0, stderr: '' })
    expect(lines(putJson.stdout)).toHaveLength(1)
    expect(JSON.parse(putJson.stdout)).toMatchObject({ id: 'e2', value: { from: 'stdin' } })

    const [get, getJson] = await Promise.all([cli(['get', 'cli', 'e1', ...dir]), cli(['get', 'cli', 'e1', '--json', ...dir])])
    expect(get.code).toBe(0)
    expect(lines(get.stdout).length).toBeGreaterThan(1) // pretty-printed for people
    expect(JSON.parse(get.stdout)).toMatchObject({ value: { a: 1, b: 'two' }, version: { [d.info.nodeId]: expect.any(Number) } })
    expect(lines(getJson.stdout)).toHaveLength(1)
    expect(JSON.parse(getJson.stdout)).toEqual(JSON.parse(get.stdout))

    const patch = await cli(['patch', 'cli', 'e1', '{"b":null,"c":[1,2]}', '--json', ...dir])
    expect(patch.code).toBe(0)
    expect(JSON.parse(patch.stdout).value).toEqual({ a: 1, c: [1, 2] })
    expect((await d.sock<{ value: unknown }>('GET', '/v1/ns/cli/entities/e1')).json.value).toEqual({ a: 1, c: [1, 2] })

    const del = await cli(['del', 'cli', 'e1', ...dir])
    expect(del).toMatchObject({ code: 0, stderr: '' })
    expect(lines(del.stdout)).toHaveLength(1)
    const delJson = await cli(['del', 'cli', 'e2', '--json', ...dir])
    expect(delJson.code).toBe(0)
    expect(JSON.parse(delJson.stdout)).toMatchObject({ id: 'e2', deleted: true })
    expect((await d.sock('GET', '/v1/ns/cli/entities/e1')).status).toBe(404)
  })

  it('ls pages through a namespace; status shows the node', async () => {
    const ops = Array.from({ length: 25 }, (_, i) => ({ op: 'put', ns: 'cli-ls', id: `k${String(i).padStart(2, '0')}`, value: { i } }))
    expect((await d.sock('POST', '/v1/batch', { ops })).status).toBe(200)

    const [page, all, prefixed, text, status, statusJson] = await Promise.all([
      cli(['ls', 'cli-ls', '--limit', '10', '--json', ...dir]),
      cli(['ls', 'cli-ls', '--limit', '10', '--all', '--json', ...dir]),
      cli(['ls', 'cli-ls', '--prefix', 'k1', '--json', ...dir]),
      cli(['ls', 'cli-ls', '--prefix', 'k2', ...dir]),
      cli(['status', ...dir]),
      cli(['status', '--json', ...dir]),
    ])
    expect(lines(page.stdout).map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(ops.slice(0, 10).map((o) => o.id))
    expect(lines(all.stdout).map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(ops.map((o) => o.id))
    expect(lines(prefixed.stdout).map((l) => (JSON.parse(l) as { value: unknown }).value)).toEqual(ops.slice(10, 20).map((o) => o.value))
    expect(lines(text.stdout)).toEqual(ops.slice(20).map((o) => `${o.id}\t${JSON.stringify(o.value)}`))

    for (const r of [page, all, prefixed, text, status, statusJson]) expect(r).toMatchObject({ code: 0, stderr: '' })
    expect(status.stdout).toContain(d.info.nodeId)
    expect(status.stdout).toContain(d.info.peerId)
    expect(lines(statusJson.stdout)).toHaveLength(1)
    expect(JSON.parse(statusJson.stdout)).toMatchObject({ nodeId: d.info.nodeId, peerId: d.info.peerId, versionVector: expect.any(Object) })
  })

  it('the start banner shows the p2p listen addresses other nodes bootstrap from', async () => {
    // The banner is printed right after daemon.json is written, so it may trail it a little.
    const banner = await waitFor(() => (d.stdout().includes('  data dir  ') ? d.stdout() : undefined), { timeout: 10_000, message: 'start banner' })
    expect(d.info.listen.length).toBeGreaterThan(0)
    const p2pLines = lines(banner).filter((l) => l.startsWith('  p2p       '))
    expect(p2pLines.map((l) => l.slice('  p2p       '.length))).toEqual(d.info.listen)
    for (const addr of d.info.listen) expect(addr).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${d.info.peerId}$`))
  })

  it('watch --json prints a change made after it started', async () => {
    const child = spawn(process.execPath, [meshsyncBin, 'watch', 'cli-watch', '--json', ...dir], { cwd: repoRoot, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
    try {
      // `watch` starts at "now" once it is connected, which it does not announce: write until
      // it prints (every write is after it started, so whichever it sees first qualifies).
      let n = 0
      await waitFor(
        async () => {
          if (lines(stdout).length > 0) return true
          if (child.exitCode !== null) abortWait(new Error(`watch exited with ${child.exitCode}: ${stderr}`))
          const put = await d.sock('PUT', '/v1/ns/cli-watch/entities/w', { n: ++n })
          if (put.status !== 200) abortWait(new Error(`PUT failed: ${put.text}`))
          return false
        },
        { timeout: 15_000, interval: 100, message: 'watch to print a change' },
      )
      const first = JSON.parse(lines(stdout)[0] as string) as { cursor: string; id: string; op: string; value: { n: number } }
      expect(first).toMatchObject({ id: 'w', op: 'upsert', cursor: expect.stringMatching(/^\d+$/) })
      expect(first.value.n).toBeGreaterThanOrEqual(1)
      expect(first.value.n).toBeLessThanOrEqual(n)
      // And it keeps following: the next write shows up too.
      const before = lines(stdout).length
      expect((await d.sock('PUT', '/v1/ns/cli-watch/entities/w2', { last: true })).status).toBe(200)
      await waitFor(() => lines(stdout).some((l) => (JSON.parse(l) as { id: string }).id === 'w2'), { timeout: 5000, message: 'the second change' })
      expect(lines(stdout).length).toBeGreaterThan(before)
    } finally {
      child.kill('SIGINT')
    }
    // Ctrl-C ends it cleanly.
    expect(await exited).toBe(0)
    expect(stderr).toBe('')
  })

  it('an error is one line on stderr and a non-zero exit', async () => {
    const emptyDir = await tempDir('meshsync-nodaemon-')
    const results = await Promise.all([
      cli(['get', 'cli', 'no-such-entity', ...dir]),
      cli(['get', 'cli', 'no-such-entity', '--json', ...dir]),
      cli(['status', '--data-dir', emptyDir]),
      cli(['put', 'cli', 'x', '{not json', ...dir]),
      cli(['put', 'Bad!NS', 'x', '{}', ...dir]),
      cli(['del', 'cli', 'no-such-entity', ...dir]),
      cli(['watch', 'cli', '--data-dir', emptyDir]),
      cli(['start', ...dir, '--api-port', '0', '--no-mdns', '--listen', '/ip4/127.0.0.1/tcp/0']),
      cli(['start', '--data-dir', emptyDir, '--bootstrap', '127.0.0.1:4911']),
      cli(['frobnicate', ...dir]),
      cli(['get', 'cli', 'x', '--bogus', ...dir]),
      cli(['get', 'cli', ...dir]),
      // A second daemon on the first one's p2p port (its own data dir and API port).
      cli(['start', '--data-dir', join(emptyDir, 'second'), '--api-port', '0', '--no-mdns', '--listen', takenP2p()]),
      cli(['restore', 'latest', '--into', join(emptyDir, 'restored'), '--repo', emptyDir]),
    ])
    const codes = [
      'ENTITY_NOT_FOUND',
      'ENTITY_NOT_FOUND',
      'DAEMON_NOT_RUNNING',
      'INVALID_JSON',
      'INVALID_NAMESPACE',
      'ENTITY_NOT_FOUND',
      'DAEMON_NOT_RUNNING',
      'ALREADY_RUNNING',
      'CONFIG_INVALID',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'PORT_IN_USE',
      'CLUSTER_KEY_REQUIRED',
    ]
    results.forEach((r, i) => {
      expect(r.code, r.stderr).not.toBe(0)
      expect(r.signal).toBeNull()
      expect(r.stdout).toBe('')
      expect(lines(r.stderr), r.stderr).toHaveLength(1)
      // Under --json the line is the API's error shape.
      if (i === 1) expect(JSON.parse(r.stderr)).toEqual({ error: { code: codes[i], message: expect.any(String) } })
      else expect(r.stderr).toMatch(new RegExp(`\\(${codes[i]}\\)\\n?$`))
      expect(r.stderr).not.toMatch(/\n\s+at /) // no stack trace
      expect(r.stderr).not.toMatch(/Usage:|Options:/) // no usage: that is --help
    })
    expect(results[9]?.stderr).toMatch(/unknown command 'frobnicate'/)
    expect(results[10]?.stderr).toMatch(/unknown option '--bogus'/)
    expect(results[12]?.stderr).toContain(`p2p listen address ${takenP2p()} is in use`)
    // The restore names the option that gives the cluster key, and the one that makes a new cluster.
    expect(results[13]?.stderr).toMatch(/--cluster-key FILE.*--new-cluster/)
    // The refused second `start` left the running daemon alone.
    expect((await d.sock('GET', '/v1/health')).status).toBe(200)
    expect((await d.tcp('GET', '/v1/status')).status).toBe(200)
  }, 120_000)

  /** The first daemon's p2p address without its peer id: a port taken by it. */
  function takenP2p(): string {
    return (d.info.listen[0] as string).replace(/\/p2p\/.*$/, '')
  }

  it('--version prints the package version; --help still prints the usage', async () => {
    const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version
    for (const flag of ['--version', '-V']) expect(await cli([flag])).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' })
    const help = await cli(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/Usage: meshsync/)
    expect(help.stdout).toContain('--version')
  })

  it('--json errors are JSON, for the CLI\'s own errors too', async () => {
    const unknown = await cli(['frobnicate', '--json'])
    expect(unknown.code).toBe(1)
    expect(JSON.parse(unknown.stderr)).toEqual({ error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('frobnicate') } })
    const noDaemon = await cli(['status', '--json', '--data-dir', await tempDir('meshsync-nodaemon-')])
    expect(JSON.parse(noDaemon.stderr)).toMatchObject({ error: { code: 'DAEMON_NOT_RUNNING' } })
    expect(noDaemon.stdout).toBe('')
  })

  it('peers shows each peer\'s node id and how far behind it is', async () => {
    const second = await startDaemon({ args: joinArgs(d) })
    try {
      await waitFor(async () => (await d.sock<{ nodeId: string | null; connected: boolean; behind: number | null }[]>('GET', '/v1/peers')).json.find((p) => p.connected && p.nodeId !== null && p.behind !== null), {
        timeout: 30_000,
        message: 'the second daemon synced with the first',
      })
      const peers = await cli(['peers', ...dir])
      expect(peers.code).toBe(0)
      const row = lines(peers.stdout).find((l) => l.includes(second.info.peerId))
      expect(row).toMatch(new RegExp(`^up +node ${second.info.nodeId} ${second.info.peerId} behind \\d+ last sync `))
    } finally {
      await second.stop()
    }
  })

  it('init creates node.key, cluster.key and api-token with mode 0600', async () => {
    const root = join(await tempDir('meshsync-init-'), 'fresh')
    const init = await cli(['init', '--json', '--data-dir', root])
    expect(init).toMatchObject({ code: 0, stderr: '' })
    const out = JSON.parse(init.stdout) as { dataDir: string; peerId: string; nodeId: string; created: string[] }
    expect(out.dataDir).toBe(root)
    expect(out.created.sort()).toEqual(['api-token', 'cluster.key', 'node.key'].map((f) => join(root, f)))
    for (const file of ['node.key', 'cluster.key', 'api-token']) {
      const s = await stat(join(root, file))
      expect(s.isFile()).toBe(true)
      expect((s.mode & 0o777).toString(8), file).toBe('600')
    }
    expect(((await stat(root)).mode & 0o777).toString(8)).toBe('700')
    // Running it again changes nothing.
    const again = await cli(['init', '--json', '--data-dir', root])
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ peerId: out.peerId, nodeId: out.nodeId, created: [] })
    const human = await cli(['init', '--data-dir', root])
    expect(human).toMatchObject({ code: 0, stderr: '' })
    expect(human.stdout).toContain(out.peerId)
  })

  const oldNode = findOldNode()
  it.skipIf(oldNode === undefined)(
    `on a Node older than 22.18 it prints one line naming the required version and exits 1${oldNode ? ` (${oldNode})` : ' — SKIPPED: no Node < 22 on this machine'}`,
    async () => {
      for (const args of [['status', ...dir], ['start', '--data-dir', d.dataDir], ['--version']]) {
        const r = await cli(args, { node: oldNode as string })
        expect(r.code).toBe(1)
        expect(r.stdout).toBe('')
        expect(lines(r.stderr)).toHaveLength(1)
        expect(r.stderr).toMatch(/22\.18/)
        expect(r.stderr).not.toMatch(/\n\s+at /)
      }
    },
  )
})
