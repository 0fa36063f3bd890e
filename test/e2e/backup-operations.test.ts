import { execFileSync } from 'node:child_process'
import { createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { startDaemon, stopAllDaemons, type ApiResponse } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * docs/api.md (Long operations): a backup that hangs does not wedge the node. The hang is real:
 * the backup goes to an S3 endpoint that takes connections and never answers, as a dead network
 * path to a bucket would.
 */

const tempDir = useTempDirs('all')

afterAll(async () => {
  await stopAllDaemons()
})

interface Operation {
  kind: string
  done: number
  bytes: number
  startedAt: string
}

describe('a backup that hangs', () => {
  it('is in the status; other operations are refused at once with 423 and Retry-After; SIGINT still stops the daemon cleanly', async () => {
    const sockets: Socket[] = []
    const silent = createServer((socket) => void sockets.push(socket))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const port = (silent.address() as { port: number }).port
    const d = await startDaemon({ env: { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_EC2_METADATA_DISABLED: 'true' } })
    for (const id of ['a', 'b']) expect((await d.sock('PUT', `/v1/ns/items/entities/${id}`, { id })).status).toBe(200)
    const stuck = `s3://stuck-bucket/repo?endpoint=${encodeURIComponent(`http://127.0.0.1:${port}`)}&region=us-east-1`
    const hanging = d.sock<{ error: { code: string } }>('POST', '/v1/backups', { type: 'full', target: stuck }).catch((error: unknown) => error)

    const status = await waitFor(
      async () => {
        const res = await d.sock<{ backups: { running: boolean; operation: Operation | null } }>('GET', '/v1/status')
        return res.json.backups.operation ?? undefined
      },
      { timeout: 20_000, message: 'the backup shows in /v1/status' },
    )
    expect(status).toMatchObject({ kind: 'backup' })
    expect(Date.parse(status.startedAt)).not.toBeNaN()

    // Each of these would wait behind the hung backup for ever if it queued.
    const other = await tempDir('meshsync-other-repo-')
    const busy: ApiResponse<{ error: { code: string; message: string } }>[] = [
      await d.sock('POST', '/v1/backups', { type: 'full', target: other }),
      await d.tcp('POST', '/v1/backups', { type: 'incremental', target: other }),
      await d.sock('POST', '/v1/restore', { backup: 'latest', target: other }),
      await d.sock('POST', '/v1/backups/latest/verify', { target: other }),
    ]
    for (const res of busy) {
      expect([res.status, res.json.error.code]).toEqual([423, 'BACKUP_BUSY'])
      expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/)
      expect(res.json.error.message).toContain('a backup is running')
    }
    // Listing is no long operation: it still answers.
    expect((await d.sock('GET', `/v1/backups?target=${encodeURIComponent(other)}`)).status).toBe(200)
    const metrics = await d.tcp('GET', '/metrics')
    expect(metrics.text).toMatch(/meshsync_backup_operation_running\{kind="backup"\} 1/)

    // SIGINT: the backup is aborted and the daemon exits by itself (not by the grace period's exit 1).
    d.child.kill('SIGINT')
    expect(await d.exited).toEqual({ code: 0, signal: null })
    const answer = await hanging
    // The hung request got its answer (503 BACKUP_ABORTED), or its connection closed with the daemon.
    if (!(answer instanceof Error)) expect((answer as ApiResponse<{ error: { code: string } }>).json.error.code).toBe('BACKUP_ABORTED')
    expect(d.stderr()).not.toMatch(/grace period/)
    // It did reach the endpoint (the hang was the endpoint's, not a refusal before it).
    expect(sockets.length).toBeGreaterThan(0)
    for (const s of sockets) s.destroy()
    silent.close()
  })

  it('stuck in a file-system call for good (a FIFO nobody writes): SIGINT still ends the process, with one line saying why', async () => {
    const d = await startDaemon()
    const stuck = await tempDir('meshsync-fifo-repo-')
    execFileSync('mkfifo', [join(stuck, 'config.json')])
    void d.sock('POST', '/v1/backups', { type: 'full', target: stuck }).catch(() => undefined)
    await waitFor(async () => (await d.sock<{ backups: { operation: Operation | null } }>('GET', '/v1/status')).json.backups.operation ?? undefined, {
      timeout: 20_000,
      message: 'the backup shows in /v1/status',
    })
    d.child.kill('SIGINT')
    // Node joins its thread pool on exit, and one thread waits on the FIFO for ever: only a
    // SIGKILL to itself ends the process (without it, this waits until the test times out).
    expect(await d.exited).toEqual({ code: null, signal: 'SIGKILL' })
    expect(d.stderr()).toMatch(/^meshsync: stopped; a backup operation is stuck in a file-system call/m)
  })
})
