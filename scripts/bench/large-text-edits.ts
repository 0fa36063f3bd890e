/**
 * One small edit per commit on a large text (a user typing into a long document through the text
 * API): the store keeping each commit's Yjs update after a base state (state-parts.ts) next to
 * the same store writing the whole state on every commit, in the same run. The document is the
 * `automerge-paper` trace grown to its last `edits` patches in large batches (not measured); the
 * last patches are then committed one per write, and both stores must end with the trace's final
 * text. Reports time and store CPU per commit, and the bytes each commit hands to LevelDB.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pino } from 'pino'
import type { KvBatchOp, KvWriteOptions } from '../../daemon/storage/kv-store.ts'
import { LevelKvStore } from '../../daemon/storage/level-kv-store.ts'
import { EntityStore } from '../../daemon/store/entity-store.ts'
import { check } from './checks.ts'
import { selfCpuMs } from './cpu.ts'
import { summarize } from './stats.ts'
import { loadTrace, type EditingTrace } from './text-trace.ts'
import type { Benchmark, BenchOptions, BenchResult } from './types.ts'

const TRACE = 'automerge-paper'
const logger = pino({ level: 'silent' })

/** LevelDB, counting the bytes (keys and values) of every batch. */
class CountingKvStore extends LevelKvStore {
  bytes = 0
  override batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void> {
    for (const op of ops) this.bytes += op.key.length + (op.type === 'put' ? op.value.length : 0)
    return super.batch(ops, options)
  }
}

interface Pass {
  readonly usPerCommit: number
  readonly cpuUsPerCommit: number
  readonly bytesPerCommit: number
  readonly chars: number
}

async function onePass(trace: EditingTrace, edits: number, deltas: boolean, options: BenchOptions): Promise<Pass> {
  const dir = await mkdtemp(join(options.baseDir, 'large-text-'))
  const kv = new CountingKvStore(join(dir, 'db'))
  const store = new EntityStore({ kv, nodeId: 'abcdef0123456789', logger }, deltas ? {} : { stateDeltas: { minBaseBytes: Number.POSITIVE_INFINITY } })
  try {
    await store.open()
    const split = trace.patches.length - edits
    const text = (splices: EditingTrace['patches']): Parameters<EntityStore['write']>[0] => [{ op: 'text', ns: 'docs', id: 'paper', name: 'body', splices: splices as [number, number, string][] }]
    if (trace.startContent !== '') await store.write(text([[0, 0, trace.startContent]]))
    for (let i = 0; i < split; i += 2000) await store.write(text(trace.patches.slice(i, Math.min(split, i + 2000))))
    kv.bytes = 0
    const [cpu0, t0] = [selfCpuMs(), performance.now()]
    for (let i = split; i < trace.patches.length; i++) await store.write(text([trace.patches[i] as [number, number, string]]))
    const [cpu1, t1] = [selfCpuMs(), performance.now()]
    const final = (await store.getText('docs', 'paper', 'body')).text
    check(final === trace.endContent, `${deltas ? 'deltas' : 'whole state'}: the final text differs from the trace's endContent`)
    return { usPerCommit: ((t1 - t0) * 1000) / edits, cpuUsPerCommit: ((cpu1 - cpu0) * 1000) / edits, bytesPerCommit: kv.bytes / edits, chars: final.length }
  } finally {
    await store.close().catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  }
}

export function largeTextEdits(editsOverride?: number): Benchmark {
  return {
    name: 'large-text-edits',
    title: `one splice per commit on a large text (${TRACE}): base + per-commit deltas vs the whole state on every commit`,
    async run(options: BenchOptions): Promise<BenchResult> {
      const edits = editsOverride ?? (options.full ? 10_000 : 2_000)
      const trace = await loadTrace(TRACE)
      check(edits < trace.patches.length, `--edits must be below the trace's ${trace.patches.length} patches`)
      const runs: { deltas: Pass; whole: Pass }[] = []
      for (let round = 0; round < options.runs; round++) {
        // Alternating order, so that neither side always runs on a warmer machine.
        const first = await onePass(trace, edits, round % 2 === 0, options)
        const second = await onePass(trace, edits, round % 2 !== 0, options)
        const [deltas, whole] = round % 2 === 0 ? [first, second] : [second, first]
        runs.push({ deltas, whole })
        options.log(
          `  run ${round + 1}/${options.runs}: ${deltas.usPerCommit.toFixed(0)} us/commit (${deltas.cpuUsPerCommit.toFixed(0)} us CPU, ${deltas.bytesPerCommit.toFixed(0)} B) vs whole state ${whole.usPerCommit.toFixed(0)} us (${whole.cpuUsPerCommit.toFixed(0)} us CPU, ${whole.bytesPerCommit.toFixed(0)} B), text ${deltas.chars} chars`,
        )
      }
      const fig = (label: string, unit: string, values: number[]): BenchResult['figures'][number] => ({ label, unit, summary: summarize(values) })
      return {
        name: 'large-text-edits',
        title: this.title,
        params: { trace: TRACE, edits, finalChars: runs[0]?.deltas.chars },
        figures: [
          fig('commit of one splice, base + deltas', 'us', runs.map((r) => r.deltas.usPerCommit)),
          fig('commit of one splice, whole state (same store, deltas off)', 'us', runs.map((r) => r.whole.usPerCommit)),
          fig('time per commit, deltas / whole state', 'x', runs.map((r) => r.deltas.usPerCommit / r.whole.usPerCommit)),
          fig('store CPU per commit, base + deltas', 'us', runs.map((r) => r.deltas.cpuUsPerCommit)),
          fig('store CPU per commit, whole state', 'us', runs.map((r) => r.whole.cpuUsPerCommit)),
          fig('bytes to LevelDB per commit, base + deltas', 'bytes', runs.map((r) => r.deltas.bytesPerCommit)),
          fig('bytes to LevelDB per commit, whole state', 'bytes', runs.map((r) => r.whole.bytesPerCommit)),
        ],
      }
    },
  }
}
