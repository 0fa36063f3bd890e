import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ChangeRecord } from '../../crdt/index.ts'
import { LevelKvStore } from '../../daemon/storage/index.ts'
import type { LocalOp } from '../../daemon/store/entity-store.ts'
import { generateIdentityKey } from '../../transport/index.ts'
import { newClusterKey, startMeshNode, type MeshNode } from '../lib/mesh-node.ts'
import { check } from './checks.ts'
import { summarizeProfiles, type ProfileSummary } from './profile.ts'
import { sampleIndexes } from './records.ts'
import { summarize } from './stats.ts'
import { ratioAtMostFigure, type Benchmark, type BenchOptions, type BenchResult, type Figure } from './types.ts'

const NS = 'inv'
const BATCH = 1000
/** The changed share of the entities while the node was offline. */
const CHANGED_SHARE = 0.1
/** Also caught up at every size: the same number of changed entities whatever the data set's size. */
const FIXED_DIFF = 100
const BYTES_TARGET = 1.5
const TIME_TARGET = 1.5
const SAMPLES = 50

const entityId = (i: number): string => `item-${String(i).padStart(7, '0')}`

interface CatchUp {
  readonly size: number
  readonly changed: number
  /** Bytes of the changed entities' Yjs updates (what they are at least worth). */
  readonly updateBytes: number
  /** Bytes the reconnecting node received in its sync session(s). */
  readonly bytesIn: number
  readonly records: number
  /** From the dial until the node's version vector equals the online node's. */
  readonly ms: number
}

async function writeAll(node: MeshNode, ops: readonly LocalOp[]): Promise<void> {
  // Two batches in flight: the store's group commit takes the next while one is being synced.
  const batches: LocalOp[][] = []
  for (let i = 0; i < ops.length; i += BATCH) batches.push(ops.slice(i, i + BATCH))
  let next = 0
  const loop = async (): Promise<void> => {
    while (next < batches.length) await node.store.write(batches[next++] as LocalOp[])
  }
  await Promise.all([loop(), loop()])
}

async function waitForVector(node: MeshNode, want: Readonly<Record<string, number>>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  const done = (): boolean => Object.entries(want).every(([origin, seq]) => (node.store.versionVector[origin] ?? 0) >= seq)
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`node did not catch up to ${JSON.stringify(want)} in ${timeoutMs} ms: has ${JSON.stringify(node.store.versionVector)}`)
    await sleep(2)
  }
}

/**
 * An online node A holding `size` entities and a node B that has all of them and is offline. Each
 * {@link catchUp} changes some entities on A, brings B back (same identity and LevelDB), dials A
 * and times B until its version vector equals A's.
 */
class Pair {
  readonly size: number
  readonly #key: Uint8Array
  readonly #a: MeshNode
  readonly #bKey: Uint8Array
  readonly #bDb: string
  readonly #dirs: readonly string[]
  /** qty of every entity as A has it. */
  readonly #qty: Int32Array
  #round = 0

  private constructor(size: number, key: Uint8Array, a: MeshNode, bKey: Uint8Array, bDb: string, dirs: readonly string[], qty: Int32Array) {
    this.size = size
    this.#key = key
    this.#a = a
    this.#bKey = bKey
    this.#bDb = bDb
    this.#dirs = dirs
    this.#qty = qty
  }

  static async setUp(size: number, options: BenchOptions): Promise<Pair> {
    const dirA = await mkdtemp(join(options.baseDir, 'catchup-a-'))
    const dirB = await mkdtemp(join(options.baseDir, 'catchup-b-'))
    const key = newClusterKey()
    let a: MeshNode | undefined
    let b: MeshNode | undefined
    try {
      const started = performance.now()
      a = await startMeshNode({ clusterKey: key, kv: new LevelKvStore(join(dirA, 'db')) })
      const qty = new Int32Array(size)
      const ops: LocalOp[] = []
      for (let i = 0; i < size; i++) {
        qty[i] = i % 97
        ops.push({ op: 'put', ns: NS, id: entityId(i), value: { sku: i, qty: i % 97, site: 'north' } })
      }
      await writeAll(a, ops)
      const loaded = performance.now()
      const bKey = await generateIdentityKey()
      b = await startMeshNode({ clusterKey: key, kv: new LevelKvStore(join(dirB, 'db')), identityKey: bKey })
      await b.transport.dial(a.addr())
      await waitForVector(b, a.store.versionVector, 600_000)
      await b.replicator.idle()
      await b.stop()
      options.log(`  ${size.toLocaleString('en-US')} entities: loaded in ${((loaded - started) / 1000).toFixed(1)} s, first full sync in ${((performance.now() - loaded) / 1000).toFixed(1)} s (set-up, not measured)`)
      return new Pair(size, key, a, bKey, join(dirB, 'db'), [dirA, dirB], qty)
    } catch (error) {
      await b?.stop().catch(() => undefined)
      await a?.stop().catch(() => undefined)
      await Promise.all([dirA, dirB].map((d) => rm(d, { recursive: true, force: true })))
      throw error
    }
  }

  /** Changes `changed` entities on A (spread evenly, a different set each round) while B is offline, then times B's catch-up. */
  async catchUp(changed: number, profile?: { dir: string }): Promise<CatchUp & { profileFile?: string }> {
    const a = this.#a
    const round = this.#round++
    const stride = Math.floor(this.size / changed)
    const indexes = Array.from({ length: changed }, (_, k) => k * stride + (round % stride))
    const before = a.store.versionVector[a.store.nodeId] ?? 0
    const ops: LocalOp[] = indexes.map((i) => {
      this.#qty[i] = (this.#qty[i] as number) + 1
      return { op: 'patch', ns: NS, id: entityId(i), value: { qty: this.#qty[i] as number } }
    })
    await writeAll(a, ops)
    let updateBytes = 0
    let logged = 0
    for await (const c of a.store.changeLog(a.store.nodeId, before)) {
      updateBytes += (c as ChangeRecord).update.length
      logged++
    }
    check(logged === changed, `A logged ${logged} changes, expected ${changed}`)

    const b = await startMeshNode({ clusterKey: this.#key, kv: new LevelKvStore(this.#bDb), identityKey: this.#bKey })
    let session: Session | undefined
    try {
      const want = { ...a.store.versionVector }
      if (profile) {
        session = new Session()
        session.connect()
        await session.post('Profiler.enable')
        await session.post('Profiler.setSamplingInterval', { interval: 500 })
        await session.post('Profiler.start')
      }
      const t0 = performance.now()
      await b.transport.dial(a.addr())
      await waitForVector(b, want, 600_000)
      const ms = performance.now() - t0
      let profileFile: string | undefined
      if (session) {
        const { profile: cpu } = await session.post('Profiler.stop')
        profileFile = join(profile?.dir ?? '.', `catch-up-${this.size}-${changed}.cpuprofile`)
        await writeFile(profileFile, JSON.stringify(cpu))
      }
      await b.replicator.idle()
      const stats = b.replicator.stats
      check(stats.recordsIn === changed, `B received ${stats.recordsIn} change records, expected ${changed}`)
      check(JSON.stringify(b.store.versionVector) === JSON.stringify(a.store.versionVector), `B's vector ${JSON.stringify(b.store.versionVector)} differs from A's ${JSON.stringify(a.store.versionVector)}`)
      for (const k of sampleIndexes(indexes.length, Math.min(SAMPLES, indexes.length))) {
        const i = indexes[k] as number
        const entity = await b.store.get(NS, entityId(i))
        const value = entity.value as { sku?: unknown; qty?: unknown; site?: unknown }
        check(value.sku === i && value.qty === this.#qty[i] && value.site === 'north', `B reads ${entityId(i)} as ${JSON.stringify(entity.value)}, expected qty ${this.#qty[i]}`)
      }
      const bCount = b.store.entityCounts[NS]
      check(bCount === this.size, `B holds ${bCount} entities, expected ${this.size}`)
      return { size: this.size, changed, updateBytes, bytesIn: stats.bytesIn, records: stats.recordsIn, ms, ...(profileFile !== undefined && { profileFile }) }
    } finally {
      session?.disconnect()
      await b.stop()
    }
  }

  async close(): Promise<void> {
    await this.#a.stop()
    await Promise.all(this.#dirs.map((d) => rm(d, { recursive: true, force: true })))
  }
}

function ratio(xs: readonly number[], ys: readonly number[]): number[] {
  return xs.map((x, i) => x / (ys[i] as number))
}

export function catchUpBench(sizesOverride?: readonly number[]): Benchmark {
  return {
    name: 'catch-up',
    title: `catch-up of a node that was offline while ${CHANGED_SHARE * 100}% of the entities changed: bytes received vs the changed Yjs updates, time at 1k vs 100k entities (in-process nodes, LevelDB, real libp2p)`,
    async run(options: BenchOptions): Promise<BenchResult> {
      const sizes = [...(sizesOverride ?? (options.full ? [1_000, 100_000, 300_000] : [1_000, 100_000]))].sort((x, y) => x - y)
      const small = sizes[0] as number
      const big = sizes.at(-1) as number
      check(small * CHANGED_SHARE >= FIXED_DIFF || sizes.length === 1, `the smallest size must have at least ${FIXED_DIFF / CHANGED_SHARE} entities`)
      // per size: the 10% catch-ups, one per run; and the fixed-diff catch-ups (the same when 10% is FIXED_DIFF).
      const share = new Map<number, CatchUp[]>()
      const fixed = new Map<number, CatchUp[]>()
      let profile: ProfileSummary | undefined
      for (const size of sizes) {
        const pair = await Pair.setUp(size, options)
        try {
          const changed = Math.round(size * CHANGED_SHARE)
          const s: CatchUp[] = []
          const f: CatchUp[] = []
          // Warm-up (not measured): the first catch-up of a process pays for JIT and first connections.
          await pair.catchUp(FIXED_DIFF)
          for (let run = 0; run < options.runs; run++) {
            const c = await pair.catchUp(changed)
            s.push(c)
            let d = c
            if (changed !== FIXED_DIFF) {
              d = await pair.catchUp(FIXED_DIFF)
              f.push(d)
            } else f.push(c)
            options.log(
              `  ${size.toLocaleString('en-US')} entities, run ${run + 1}/${options.runs}: ${changed} changed: ${c.ms.toFixed(0)} ms, ` +
                `${c.bytesIn.toLocaleString('en-US')} B received / ${c.updateBytes.toLocaleString('en-US')} B of Yjs updates = ${(c.bytesIn / c.updateBytes).toFixed(3)}x` +
                (d === c ? '' : `; ${FIXED_DIFF} changed: ${d.ms.toFixed(0)} ms, ${(d.bytesIn / d.updateBytes).toFixed(3)}x`),
            )
          }
          share.set(size, s)
          fixed.set(size, f)
          if (options.cpuProfDir !== undefined && size === big) {
            const dir = join(options.cpuProfDir, 'catch-up')
            await rm(dir, { recursive: true, force: true })
            await mkdir(dir, { recursive: true })
            options.log('  profiling pass (not measured)')
            const c = await pair.catchUp(changed, { dir })
            if (c.profileFile !== undefined) // The profiler ran for the catch-up only: every sample is in the window.
              profile = await summarizeProfiles([c.profileFile], { fromUs: 0, toUs: Number.MAX_SAFE_INTEGER }, 20, 'the bench process (both in-process nodes) during the catch-up')
          }
        } finally {
          await pair.close()
        }
      }
      const figures: Figure[] = []
      for (const size of sizes) {
        const s = share.get(size) as CatchUp[]
        const label = size.toLocaleString('en-US')
        figures.push(
          { label: `${label}: catch-up time (${s[0]?.changed} changed)`, unit: 'ms', summary: summarize(s.map((c) => c.ms)) },
          { label: `${label}: bytes received`, unit: 'bytes', summary: summarize(s.map((c) => c.bytesIn)) },
          { label: `${label}: bytes of the changed Yjs updates`, unit: 'bytes', summary: summarize(s.map((c) => c.updateBytes)) },
        )
        const bytesRatio = summarize(s.map((c) => c.bytesIn / c.updateBytes))
        figures.push(size === big ? ratioAtMostFigure(`${label}: bytes received / changed Yjs update bytes`, bytesRatio, BYTES_TARGET) : { label: `${label}: bytes received / changed Yjs update bytes`, unit: 'x', summary: bytesRatio })
        figures.push({ label: `${label}: time per changed entity`, unit: 'µs/op', summary: summarize(s.map((c) => (c.ms * 1000) / c.changed)) })
        if (size !== small) {
          const f = fixed.get(size) as CatchUp[]
          figures.push({ label: `${label}: catch-up time (${FIXED_DIFF} changed)`, unit: 'ms', summary: summarize(f.map((c) => c.ms)) })
        }
      }
      if (sizes.length > 1) {
        const s0 = share.get(small) as CatchUp[]
        const s1 = share.get(big) as CatchUp[]
        const f0 = fixed.get(small) as CatchUp[]
        const f1 = fixed.get(big) as CatchUp[]
        const [l0, l1] = [small.toLocaleString('en-US'), big.toLocaleString('en-US')]
        figures.push(
          { label: `total time ratio ${l1}/${l0} (10% each: ${s1[0]?.changed} vs ${s0[0]?.changed} changed)`, unit: 'x', summary: summarize(ratio(s1.map((c) => c.ms), s0.map((c) => c.ms))) },
          ratioAtMostFigure(
            `time per changed entity ratio ${l1}/${l0}`,
            summarize(ratio(s1.map((c) => c.ms / c.changed), s0.map((c) => c.ms / c.changed))),
            TIME_TARGET,
          ),
          ratioAtMostFigure(`same diff (${FIXED_DIFF} changed) time ratio ${l1}/${l0}`, summarize(ratio(f1.map((c) => c.ms), f0.map((c) => c.ms))), TIME_TARGET),
        )
      }
      return {
        name: 'catch-up',
        title: this.title,
        params: {
          sizes,
          changedShare: CHANGED_SHARE,
          fixedDiff: FIXED_DIFF,
          runs: options.runs,
          setup:
            'two in-process nodes (test/helpers/mesh-node.ts: EntityStore on LevelKvStore, MeshTransport over real loopback TCP with pnet+Noise+Yamux, Replicator) in the bench process; ' +
            'A writes `size` entities ({sku, qty, site}), B syncs them all and stops; each run A patches qty of the changed entities (a different evenly spread set per run) and B restarts on its LevelDB with its identity',
          definitions: {
            time: 'from the dial of B to A until B\'s node version vector equals A\'s (polled every 2 ms); B\'s LevelDB open is before the clock starts',
            bytes: 'B\'s replicator.stats.bytesIn: every byte of the sync session frames B received (HELLO, deflated CHANGES, DONE, ACK)',
            updateBytes: 'sum of the Yjs update bytes of the changed entities\' change records in A\'s log (the baseline: what the changes are worth at least)',
            timeTarget:
              'the issue\'s "100k time <= 1.5x 1k time" read two ways, both reported with the target: (1) time per changed entity at the big size over the same at 1k (10% changed each); ' +
              `(2) the same diff (${FIXED_DIFF} changed entities) caught up at the big size and at 1k: cost proportional to the difference, not to the data set (docs/sync-protocol.md). ` +
              'The total-time ratio at 10% each (100x the changes) is reported for information, with no target',
          },
          catchUps: { share: Object.fromEntries(share), fixedDiff: Object.fromEntries(fixed) },
        },
        figures,
        ...(profile && { profile }),
      }
    },
  }
}
