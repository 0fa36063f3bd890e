import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pino } from 'pino'
import { LevelKvStore, type KvBatchOp, type KvWriteOptions } from '../../daemon/storage/index.ts'
import { entityMetaRange } from '../../daemon/store/keys.ts'
import { EntityStore, type LocalOp } from '../../daemon/store/entity-store.ts'
import { check } from './checks.ts'
import { cpuUsPerOp, monotonicUs, selfCpuMs } from './cpu.ts'
import { RawLevel } from './level-baseline.ts'
import { rate } from './stats.ts'
import type { PassMeasure } from './types.ts'

/**
 * Where the batch benchmark's gap to raw classic-level lies, measured in the same run: the store
 * alone (in this process, no HTTP), and raw classic-level writing exactly the entries the store
 * wrote for the same records (meta, Yjs state, change-feed entry and change-log record per entity,
 * and the node's own keys per batch). The second is what no store code at all could beat with this
 * layout.
 */

/** A LevelKvStore that keeps a copy of every batch it writes. */
class RecordingKvStore extends LevelKvStore {
  recording = false
  readonly batches: (readonly KvBatchOp[])[] = []

  override async batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void> {
    if (this.recording) this.batches.push(ops)
    return super.batch(ops, options)
  }
}

export interface StorePass extends PassMeasure {
  /** The batches the store wrote for the measured records, in order. */
  readonly batches: readonly (readonly KvBatchOp[])[]
  readonly entriesPerRecord: number
  readonly bytesPerRecord: number
}

/**
 * Records/s of `EntityStore.write` of `batches` (each one atomic group, awaited in turn) in this
 * process, after `warm` unmeasured; checks the namespace holds every record.
 */
export async function storePass(baseDir: string, ns: string, warm: readonly (readonly LocalOp[])[], batches: readonly (readonly LocalOp[])[]): Promise<StorePass> {
  const dir = await mkdtemp(join(baseDir, 'store-layout-'))
  const kv = new RecordingKvStore(join(dir, 'db'))
  const store = new EntityStore({ kv, nodeId: 'b0b0b0b0', logger: pino({ level: 'silent' }) })
  try {
    await store.open()
    for (const ops of warm) await store.write(ops)
    kv.recording = true
    const [cpu0, from, t0] = [selfCpuMs(), monotonicUs(), performance.now()]
    for (const ops of batches) await store.write(ops)
    const [cpu1, to, elapsed] = [selfCpuMs(), monotonicUs(), performance.now() - t0]
    kv.recording = false
    const records = batches.reduce((n, ops) => n + ops.length, 0)
    check(store.entityCounts[ns] === records, `the store holds ${store.entityCounts[ns]} entities of ${ns}, expected ${records}`)
    const entries = kv.batches.reduce((n, ops) => n + ops.length, 0)
    const bytes = kv.batches.reduce((n, ops) => n + ops.reduce((m, op) => m + Buffer.byteLength(op.key) + (op.type === 'put' ? op.value.length : 0), 0), 0)
    return {
      opsPerSec: rate(records, elapsed),
      cpuUsPerOp: cpuUsPerOp(cpu0, cpu1, records),
      window: { fromUs: from, toUs: to },
      batches: kv.batches,
      entriesPerRecord: entries / records,
      bytesPerRecord: bytes / records,
    }
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Records/s of raw classic-level writing the store's own batches (`batch(ops, { sync: true })` each); checks every entity's meta is there. */
export async function sameEntriesPass(baseDir: string, ns: string, pass: StorePass, records: number): Promise<PassMeasure> {
  const raw = await RawLevel.openBytes(baseDir)
  try {
    const [cpu0, from, t0] = [selfCpuMs(), monotonicUs(), performance.now()]
    for (const ops of pass.batches) await raw.db.batch(ops as KvBatchOp[], { sync: true })
    const [cpu1, to, elapsed] = [selfCpuMs(), monotonicUs(), performance.now() - t0]
    const metas = await raw.count(entityMetaRange(ns))
    check(metas === records, `classic-level holds ${metas} entity metas of ${ns}, expected ${records}`)
    return { opsPerSec: rate(records, elapsed), cpuUsPerOp: cpuUsPerOp(cpu0, cpu1, records), window: { fromUs: from, toUs: to } }
  } finally {
    await raw.destroy()
  }
}
