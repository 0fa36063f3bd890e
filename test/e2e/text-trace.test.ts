import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { repoRoot, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

/**
 * A real editing trace (Joseph Gentle's editing-traces, CC BY 4.0) replayed through the text API:
 * every patch in order, many transactions per request; the result must equal the trace's final
 * document exactly (positions are UTF-16 code units, as in Y.Text).
 */

interface Trace {
  startContent?: string
  endContent: string
  txns: { patches: [number, number, string][] }[]
}

const TRACE = resolve(repoRoot, 'fixtures/editing-traces/sveltecomponent.json.gz')
const PATCHES_PER_REQUEST = 500
const PATH = '/v1/ns/docs/entities/svelte/text/body'

describe('editing trace replay', () => {
  useTempDirs('all')
  let d: DaemonHandle
  let trace: Trace

  beforeAll(async () => {
    trace = JSON.parse(gunzipSync(await readFile(TRACE)).toString('utf8')) as Trace
    d = await startDaemon()
  })

  afterAll(async () => {
    await d?.stop()
    await stopAllDaemons()
  })

  it('sveltecomponent: replayed in batches of 500 patches, the text equals endContent', async () => {
    expect(trace.startContent ?? '').toBe('')
    const patches = trace.txns.flatMap((t) => t.patches)
    expect(patches.length).toBeGreaterThan(10_000)
    let requests = 0
    for (let at = 0; at < patches.length; at += PATCHES_PER_REQUEST) {
      const res = await d.sock<{ version: Record<string, number> }>('POST', PATH, { ops: patches.slice(at, at + PATCHES_PER_REQUEST) })
      expect(res.status, res.text).toBe(200)
      requests++
    }
    const text = await d.tcp<{ text: string; version: Record<string, number> }>('GET', PATH)
    expect(text.status).toBe(200)
    expect(text.json.text.length).toBe(trace.endContent.length)
    expect(text.json.text === trace.endContent).toBe(true)
    // One change per request (each request is one atomic write).
    expect(text.json.version[d.info.nodeId]).toBe(requests)

    // It survives a restart byte for byte (state is the encoded Y.Doc, reloaded from LevelDB).
    await d.stop()
    d = await startDaemon({ dataDir: d.dataDir })
    const reloaded = await d.sock<{ text: string }>('GET', PATH)
    expect(reloaded.json.text === trace.endContent).toBe(true)
  })
})
