import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'
import { joinArgs } from '../helpers/cluster.ts'
import { startDaemon, stopAllDaemons, writeConfig, type DaemonHandle } from '../helpers/daemon-process.ts'
import { makeTempDir, removeTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

const providers: WebsocketProvider[] = []
afterEach(async () => {
  for (const p of providers.splice(0)) p.destroy()
  await stopAllDaemons()
  await removeTempDirs()
})

/** The stock y-websocket client, bound to entity ns/id on daemon `d` (token as a query parameter). */
function bind(d: DaemonHandle, ns: string, id: string): { doc: Y.Doc; provider: WebsocketProvider } {
  const doc = new Y.Doc()
  const url = `${d.info.api.url.replace(/^http/, 'ws')}/v1/yjs/${ns}`
  const provider = new WebsocketProvider(url, id, doc, { WebSocketPolyfill: WebSocket as never, params: { token: d.token }, disableBc: true })
  providers.push(provider)
  return { doc, provider }
}

describe('y-websocket endpoint', () => {
  it('stock clients on two nodes edit one entity (Y.Text and Y.Map) and see each other through replication', { timeout: 60_000 }, async () => {
    const a = await startDaemon({ dataDir: await makeTempDir('msync-y-') })
    const b = await startDaemon({ dataDir: await makeTempDir('msync-y-'), args: joinArgs(a) })
    const onA = bind(a, 'notes', 'n1')
    await waitFor(() => onA.provider.synced, { timeout: 10_000 })
    onA.doc.getText('body').insert(0, 'hello from A')
    onA.doc.getMap('data').set('title', 'Shared note')

    // Node B's REST API sees the edits (they were committed on A and replicated).
    await waitFor(async () => {
      const res = await b.sock<{ value: { title?: string } }>('GET', '/v1/ns/notes/entities/n1')
      return res.status === 200 && res.json.value.title === 'Shared note'
    }, { timeout: 15_000 })
    await waitFor(async () => (await b.sock<{ text: string }>('GET', '/v1/ns/notes/entities/n1/text/body')).json.text === 'hello from A', { timeout: 15_000 })

    // A second stock client, on node B, gets the state; its edits reach the client on A.
    const onB = bind(b, 'notes', 'n1')
    await waitFor(() => onB.provider.synced && onB.doc.getText('body').toString() === 'hello from A', { timeout: 15_000 })
    onB.doc.getText('body').insert(onB.doc.getText('body').length, ' and B')
    onB.doc.getMap('data').set('tags', ['x', 'y'])
    await waitFor(() => onA.doc.getText('body').toString() === 'hello from A and B', { timeout: 15_000 })
    await waitFor(() => JSON.stringify(onA.doc.getMap('data').get('tags')) === '["x","y"]', { timeout: 15_000 })

    // REST writes reach the Yjs clients too.
    await a.sock('PATCH', '/v1/ns/notes/entities/n1', { status: 'done' })
    await waitFor(() => onB.doc.getMap('data').get('status') === 'done', { timeout: 15_000 })
    expect((await a.sock<{ value: unknown }>('GET', '/v1/ns/notes/entities/n1')).json.value).toEqual({ title: 'Shared note', tags: ['x', 'y'], status: 'done' })
  })

  it('a client bound to an entity that is recreated after its grace period is closed with 4410; a new doc then syncs the new incarnation', async () => {
    const dataDir = await makeTempDir('msync-y-')
    await writeConfig(dataDir, { gc: { tombstoneGraceMs: 200, intervalMs: 0, clockSkewMs: 0 } })
    const a = await startDaemon({ dataDir })
    expect((await a.sock('PUT', '/v1/ns/notes/entities/r1', { v: 'old' })).status).toBe(200)
    const url = `${a.info.api.url.replace(/^http/, 'ws')}/v1/yjs/notes/r1?token=${a.token}`
    const ws = new WebSocket(url)
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => resolve())
      ws.on('error', reject)
    })
    expect((await a.sock('DELETE', '/v1/ns/notes/entities/r1')).status).toBe(200)
    await new Promise((r) => setTimeout(r, 300))
    expect((await a.sock('PUT', '/v1/ns/notes/entities/r1', { v: 'new' })).status).toBe(200)
    expect(await closed).toBe(4410)
    const fresh = bind(a, 'notes', 'r1')
    await waitFor(() => fresh.provider.synced && fresh.doc.getMap('data').get('v') === 'new', { timeout: 15_000 })
    expect(fresh.doc.getMap('data').toJSON()).toEqual({ v: 'new' })
  })

  it('refuses a connection without the token over TCP', async () => {
    const a = await startDaemon({ dataDir: await makeTempDir('msync-y-') })
    const url = `${a.info.api.url.replace(/^http/, 'ws')}/v1/yjs/notes/n1`
    const code = await new Promise<number>((resolve) => {
      const ws = new WebSocket(url)
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      ws.on('error', () => resolve(-1))
    })
    expect(code).toBe(401)
  })
})
