import { readFile, mkdir, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { gunzipSync } from 'node:zlib'
import * as Y from 'yjs'
import { check } from './checks.ts'
import { withCluster, type BenchCluster } from './cluster.ts'
import { cpuUsPerOp, monotonicUs, processesCpuMs, selfCpuMs } from './cpu.ts'
import { profilesIn, summarizeProfiles, type ProfileSummary, type TimeWindow } from './profile.ts'
import { summarize } from './stats.ts'
import { optionalFigure, ratioAtMostFigure, type Benchmark, type BenchOptions, type BenchResult, type Figure } from './types.ts'

const REPO_ROOT = resolve(import.meta.dirname, '..', '..')
/** Joseph Gentle's editing traces (CC BY 4.0), kept in the repository (fixtures/editing-traces/README.md). */
export const TRACES_DIR = resolve(REPO_ROOT, 'fixtures', 'editing-traces')
const TRACE = 'automerge-paper'
const NODES = 3
const NS = 'docs'
/**
 * Patches per POST: an editor that sends what was typed every few seconds at ~100 keystrokes a
 * second (the whole trace then takes 260 requests, each one change replicated to every node).
 */
export const PATCHES_PER_REQUEST = 1000
const TARGET = 3

/** One trace of github.com/josephg/editing-traces (sequential_traces format). */
export interface EditingTrace {
  readonly startContent: string
  readonly endContent: string
  /** Every patch of every transaction, in order: `[position, deleteCount, insert]`. */
  readonly patches: readonly (readonly [number, number, string])[]
}

/** Loads `<name>.json.gz` from the traces dir; refuses a trace this benchmark cannot replay as is. */
export async function loadTrace(name: string, dir = TRACES_DIR): Promise<EditingTrace> {
  const raw = JSON.parse(gunzipSync(await readFile(join(dir, `${name}.json.gz`))).toString('utf8')) as {
    startContent?: string
    endContent: string
    txns: { patches: [number, number, string][] }[]
  }
  const patches = raw.txns.flatMap((t) => t.patches)
  // Trace positions count code points, the text API's count UTF-16 units: equal only without astral characters.
  check(!/[\uD800-\uDFFF]/.test(raw.endContent) && patches.every(([, , ins]) => !/[\uD800-\uDFFF]/.test(ins)), `${name}: astral characters (positions would differ)`)
  return { startContent: raw.startContent ?? '', endContent: raw.endContent, patches }
}

/** The baseline: one Y.Doc in this process, one Y.Text insert/delete (one transaction) per patch. */
export function rawYjs(trace: EditingTrace): { ms: number; cpuMs: number; stateBytes: number } {
  const [cpu0, t0] = [selfCpuMs(), performance.now()]
  const doc = new Y.Doc()
  const text = doc.getText('body')
  for (const [pos, del, ins] of trace.patches) {
    if (del > 0) text.delete(pos, del)
    if (ins.length > 0) text.insert(pos, ins)
  }
  const result = text.toString()
  const [t1, cpu1] = [performance.now(), selfCpuMs()]
  check(result === trace.endContent, `raw Yjs made ${result.length} characters, not endContent (${trace.endContent.length})`)
  return { ms: t1 - t0, cpuMs: cpu1 - cpu0, stateBytes: Y.encodeStateAsUpdate(doc).length }
}

interface Pass {
  /** From the first POST on node A until every node returned the final text. */
  readonly ms: number
  /** Until the last POST was answered by node A. */
  readonly postedMs: number
  readonly requests: number
  /** CPU of the 3 daemons over the pass. */
  readonly daemonsCpuMs: number | null
  readonly window: TimeWindow
}

/** Three daemons; the trace posted to node A in order, one request at a time; then every node's text read back. */
async function meshsyncPass(options: BenchOptions, trace: EditingTrace, batch: number, id: string, cpuProfDir?: string): Promise<Pass> {
  return withCluster(NODES, { baseDir: options.baseDir, clientSockets: 2, ...(cpuProfDir !== undefined && { cpuProfDir }) }, async (cluster) => {
    const path = `/v1/ns/${NS}/entities/${id}/text/body`
    const [a] = cluster.nodes as [BenchCluster['nodes'][number]]
    const bodies: string[] = []
    for (let at = 0; at < trace.patches.length; at += batch) bodies.push(JSON.stringify({ ops: trace.patches.slice(at, at + batch) }))
    const before = await cluster.mergedVector()
    const nodeA = a.daemon.info.nodeId
    const want = { ...before, [nodeA]: (before[nodeA] ?? 0) + bodies.length }

    const pids = cluster.nodes.map((n) => n.daemon.pid)
    const [cpu0, from] = [processesCpuMs(pids), monotonicUs()]
    const t0 = performance.now()
    for (const body of bodies) await a.client.expect('POST', path, body)
    const posted = performance.now()
    await cluster.waitForVector(want, { timeoutMs: 600_000, intervalMs: 10 })
    const texts = await Promise.all(cluster.nodes.map(async (n) => (await n.client.expect('GET', path, undefined)) as { text: string; version: Record<string, number> }))
    const done = performance.now()
    const [cpu1, to] = [processesCpuMs(pids), monotonicUs()]

    texts.forEach((t, k) => {
      check(t.text === trace.endContent, `node ${k} returned ${t.text.length} characters that are not endContent (${trace.endContent.length})`)
      check(t.version[nodeA] === bodies.length, `node ${k}: text version ${JSON.stringify(t.version)}, expected ${bodies.length} changes by node A`)
    })
    return { ms: done - t0, postedMs: posted - t0, requests: bodies.length, daemonsCpuMs: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0, window: { fromUs: from, toUs: to } }
  })
}

/** `patchesPerRequest`: see {@link PATCHES_PER_REQUEST}. */
export function textTrace(patchesPerRequest = PATCHES_PER_REQUEST): Benchmark {
  return {
    name: 'text-trace',
    title: `the ${TRACE} editing trace posted to node A's text API (${patchesPerRequest} patches per request), until all ${NODES} daemons return the final text, vs raw Yjs applying the same patches in one process`,
    async run(options: BenchOptions): Promise<BenchResult> {
      const trace = await loadTrace(TRACE)
      check(trace.startContent === '', `${TRACE}: the trace must start from an empty text`)
      rawYjs(trace) // warm-up of the baseline's JIT (the daemons get their own warm-up below)
      const ours: Pass[] = []
      const base: ReturnType<typeof rawYjs>[] = []
      for (let run = 0; run < options.runs; run++) {
        // Alternate the order so that neither side always runs on a machine warmed up by the other.
        if (run % 2 === 1) base.push(rawYjs(trace))
        ours.push(await meshsyncPass(options, trace, patchesPerRequest, `paper-${run}`))
        if (run % 2 === 0) base.push(rawYjs(trace))
        const o = ours.at(-1) as Pass
        const b = base.at(-1) as ReturnType<typeof rawYjs>
        options.log(
          `  run ${run + 1}/${options.runs}: meshsync ${(o.ms / 1000).toFixed(2)} s (posted in ${(o.postedMs / 1000).toFixed(2)} s, ${o.requests} requests), raw Yjs ${(b.ms / 1000).toFixed(2)} s, ratio ${(o.ms / b.ms).toFixed(2)}`,
        )
      }
      let profile: ProfileSummary | undefined
      if (options.cpuProfDir !== undefined) {
        const dir = join(options.cpuProfDir, 'text-trace')
        await rm(dir, { recursive: true, force: true })
        await mkdir(dir, { recursive: true })
        options.log('  profiling pass (not measured)')
        const pass = await meshsyncPass(options, trace, patchesPerRequest, 'paper-profiled', dir)
        const files = (await Promise.all(Array.from({ length: NODES }, (_, i) => profilesIn(join(dir, `node-${i}`))))).flat()
        profile = await summarizeProfiles(files, pass.window, 20, `all ${NODES} daemons (merged)`)
      }
      const patches = trace.patches.length
      const figures: Figure[] = [
        { label: `meshsync: ${patches.toLocaleString('en-US')} patches until the text is final on all ${NODES} nodes`, unit: 's', summary: summarize(ours.map((p) => p.ms / 1000)) },
        { label: 'meshsync: until node A answered the last request', unit: 's', summary: summarize(ours.map((p) => p.postedMs / 1000)) },
        { label: 'raw Yjs: the same patches on one Y.Text', unit: 's', summary: summarize(base.map((b) => b.ms / 1000)) },
        ...optionalFigure(`meshsync CPU per patch (${NODES} daemons)`, 'µs/op', ours.map((p) => cpuUsPerOp(0, p.daemonsCpuMs, patches))),
        { label: 'raw Yjs CPU per patch', unit: 'µs/op', summary: summarize(base.map((b) => (b.cpuMs * 1000) / patches)) },
        ratioAtMostFigure('time ratio meshsync/raw Yjs', summarize(ours.map((o, i) => o.ms / (base[i] as ReturnType<typeof rawYjs>).ms)), TARGET),
      ]
      return {
        name: 'text-trace',
        title: this.title,
        params: {
          trace: TRACE,
          patches,
          finalLength: trace.endContent.length,
          nodes: NODES,
          patchesPerRequest,
          requests: ours[0]?.requests,
          rawYjsStateBytes: base[0]?.stateBytes,
          runs: options.runs,
          measures:
            `clock starts before the first POST /v1/ns/${NS}/entities/:id/text/body to node A (requests one at a time over its Unix socket, bodies serialized beforehand); ` +
            `it stops when every node's /v1/status versionVector has all of node A's changes (polled every 10 ms) and a GET of the text on every node has returned; ` +
            'each node\'s text must equal the trace\'s endContent (and carry every change of node A) or the run fails. ' +
            'Baseline: raw Yjs in the bench process, one Y.Doc, Y.Text delete/insert per patch (each its own transaction), then toString(); checked against endContent too',
          passes: { meshsync: ours.map(({ window: _w, ...p }) => p), rawYjs: base },
        },
        figures,
        ...(profile && { profile }),
      }
    },
  }
}
