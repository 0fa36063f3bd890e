import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { afterAll, describe, expect, it } from 'vitest'
import { del, joinArgs, patch, put, waitPeerSynced } from '../helpers/cluster.ts'
import { meshsyncBin, repoRoot, startDaemon, stopAllDaemons, writeConfig } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * `meshsync query NS WHERE --watch` on a real two-daemon cluster: the subscriber runs on A, writes
 * happen on A and on B (reaching A by replication); events print line by line (JSON lines under
 * --json), /metrics counts the subscriber, Ctrl-C exits cleanly, bad input is a one-line error.
 */

interface Watcher {
  readonly child: ChildProcessWithoutNullStreams
  readonly lines: string[]
  stderr(): string
  readonly exited: Promise<number | null>
}

function watch(args: readonly string[]): Watcher {
  const env = { ...process.env }
  delete env.MESHSYNC_DATA_DIR
  const child = spawn(process.execPath, [meshsyncBin, ...args], { cwd: repoRoot, env })
  const lines: string[] = []
  let partial = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    partial += c
    const parts = partial.split('\n')
    partial = parts.pop() ?? ''
    lines.push(...parts)
  })
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  const guard = setTimeout(() => child.kill('SIGKILL'), 90_000) // a guard against a hang
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(guard)
      resolve(code)
    }),
  )
  return { child, lines, stderr: () => stderr, exited }
}

async function waitLine(w: Watcher, n: number): Promise<string[]> {
  await waitFor(() => w.lines.length >= n, { timeout: 20_000, message: `${n} lines (have ${JSON.stringify(w.lines)}; stderr ${w.stderr()})` })
  return w.lines.slice(0, n)
}

describe('meshsync query --watch', () => {
  const tempDir = useTempDirs('all')
  afterAll(stopAllDaemons)

  it('prints the matches and every transition from writes on both nodes; Ctrl-C exits cleanly; bad input is one line', { timeout: 150_000 }, async () => {
    const dataDir = await tempDir('meshsync-live-')
    await writeConfig(dataDir, { namespaces: { tasks: { indexes: { byStatus: ['status'] } } } })
    const a = await startDaemon({ dataDir })
    const b = await startDaemon({ args: joinArgs(a) })
    await waitPeerSynced(a, b.info.peerId)
    await put(a, 'tasks', 't1', { status: 'open' })
    await put(a, 'tasks', 'x1', { status: 'closed' })
    await waitFor(async () => (await a.sock<{ state: string }>('GET', '/v1/ns/tasks/indexes/byStatus')).json.state === 'ready', { timeout: 20_000, message: 'byStatus built' })

    const w = watch(['query', 'tasks', '{"status":"open"}', '--watch', '--json', '--explain', '--data-dir', dataDir])
    const first = (await waitLine(w, 2)).map((l) => JSON.parse(l) as { event: string; cursor?: string; data: Record<string, unknown> })
    expect(first[0]).toMatchObject({ event: 'enter', data: { id: 't1', value: { status: 'open' } } })
    expect(first[0]?.cursor).toBeUndefined()
    expect(first[1]).toMatchObject({ event: 'ready', data: { count: 1, plan: { type: 'index', index: 'byStatus' } } })
    expect(first[1]?.cursor).toMatch(/^\d+$/)
    expect((await a.tcp('GET', '/metrics')).text).toContain('meshsync_live_query_subscribers{ns="tasks"} 1')

    await put(b, 'tasks', 't2', { status: 'open' }) // on B: reaches A by replication
    await waitLine(w, 3)
    await patch(b, 'tasks', 't1', { status: 'closed' })
    await waitLine(w, 4)
    await del(a, 'tasks', 't2')
    await patch(a, 'tasks', 'x1', { note: 'still closed' }) // no event
    await put(a, 'tasks', 't3', { status: 'open' })
    const events = (await waitLine(w, 6)).slice(2).map((l) => JSON.parse(l) as { event: string; cursor: string; data: Record<string, unknown> })
    expect(events.map((e) => [e.event, e.data.id, e.data.deleted])).toEqual([
      ['enter', 't2', undefined],
      ['leave', 't1', undefined],
      ['leave', 't2', true],
      ['enter', 't3', undefined],
    ])
    expect(events.every((e) => /^\d+$/.test(e.cursor))).toBe(true)

    w.child.kill('SIGINT')
    expect(await w.exited).toBe(0)
    expect(w.stderr()).toBe('')
    await waitFor(async () => !(await a.tcp('GET', '/metrics')).text.includes('meshsync_live_query_subscribers{ns="tasks"}'), { timeout: 10_000, message: 'the subscriber gone from /metrics' })

    // Plain lines.
    const h = watch(['query', 'tasks', '{"status":"open"}', '--watch', '--data-dir', dataDir])
    expect(await waitLine(h, 2)).toEqual(['enter\tt3\t{"status":"open"}', expect.stringMatching(/^ready\t1 matching\tcursor \d+$/)])
    await del(b, 'tasks', 't3')
    expect((await waitLine(h, 3))[2]).toBe('leave\tt3\tdeleted')
    h.child.kill('SIGINT')
    expect(await h.exited).toBe(0)

    // Bad input: one line on stderr, exit 1, nothing streamed.
    for (const [args, text] of [
      [['{"status":"open"}', '--watch', '--count'], '--watch follows every match: it does not take --count'],
      [['{"status":"open"}', '--watch', '--limit', '5'], 'it does not take --limit'],
      [['{"a":{"$nope":1}}', '--watch'], 'where.a.$nope'],
    ] as const) {
      const bad = watch(['query', 'tasks', ...args, '--data-dir', dataDir])
      expect(await bad.exited).toBe(1)
      expect(bad.lines).toEqual([])
      expect(bad.stderr().trim().split('\n')).toHaveLength(1)
      expect(bad.stderr()).toContain(text)
    }
  })
})
