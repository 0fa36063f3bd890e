import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import * as prng from 'lib0/prng'
import { verifyBackup } from '../../daemon/backup/maintain.ts'
import { listManifests } from '../../daemon/backup/read.ts'
import { openRepository } from '../../daemon/backup/target.ts'
import type { ChaosCluster } from './cluster.ts'
import { sleep } from './cluster.ts'

/** What the backups taken during a run came to. */
export interface BackupStats {
  readonly attempted: number
  /** Sets the daemons reported taken, by method. */
  readonly taken: { readonly files: number; readonly entities: number }
  /** Refused or failed ones, by `<method> <code>` (a node down, a full disk...: faults make backups fail). */
  readonly failed: Record<string, number>
  /** Sets read back afterwards (deep verify), and those that did not verify. */
  readonly verified: number
  readonly corrupt: readonly string[]
}

/**
 * Backups taken through the daemons' API while the workload and the faults run: every `everyMs`,
 * a node picked by a PRNG of the run's seed (apart from the fault schedule, which it leaves as it
 * is) takes a files backup (its store's checkpoint closes and reopens LevelDB under the
 * workload) or an incremental entity backup, in turn, into a repository of its own. Whether a
 * backup succeeds is up to the faults; afterwards every set taken must verify (deep: every
 * object, every entity), and the checker sees whether the closing and reopening lost anything.
 */
export class ChaosBackups {
  readonly #cluster: ChaosCluster
  readonly #root: string
  readonly #everyMs: number
  readonly #rng: prng.PRNG
  readonly #failed: Record<string, number> = {}
  readonly #taken = { files: 0, entities: 0 }
  #attempted = 0
  #running: Promise<void> | undefined
  #stopping = false
  #verified = 0
  #corrupt: string[] = []

  constructor(cluster: ChaosCluster, root: string, seed: number, everyMs: number) {
    this.#cluster = cluster
    this.#root = root
    this.#everyMs = everyMs
    this.#rng = prng.create(seed * 7919 + 17)
  }

  #repo(node: number): string {
    return join(this.#root, `node${node}`)
  }

  start(): void {
    this.#running = (async () => {
      await mkdir(this.#root, { recursive: true })
      for (let n = 0; !this.#stopping; n++) {
        await sleep(this.#everyMs)
        if (this.#stopping) break
        await this.#takeOne(prng.uint32(this.#rng, 0, this.#cluster.nodes.length - 1), n % 2 === 0 ? 'files' : 'entities')
      }
    })()
  }

  async #takeOne(node: number, method: 'files' | 'entities'): Promise<void> {
    this.#attempted++
    const body = method === 'files' ? { type: 'full', method: 'files', target: this.#repo(node) } : { type: 'incremental', target: this.#repo(node) }
    const outcome = await (this.#cluster.nodes[node] as ChaosCluster['nodes'][number]).api.call('POST', '/v1/backups', body, 60_000)
    if (outcome.kind === 'answer' && outcome.status === 201) {
      this.#taken[method]++
      return
    }
    const code = outcome.kind === 'answer' ? ((outcome.json as { error?: { code?: string } } | undefined)?.error?.code ?? `HTTP ${outcome.status}`) : outcome.kind
    const key = `${method} ${code}`
    this.#failed[key] = (this.#failed[key] ?? 0) + 1
  }

  /** Stops taking backups; resolves once the one under way is done. */
  async stop(): Promise<void> {
    this.#stopping = true
    await this.#running
  }

  /** Reads back every set taken (deep verify); a set that does not verify is named in `corrupt`. */
  async verify(): Promise<void> {
    for (let node = 0; node < this.#cluster.nodes.length; node++) {
      const repo = openRepository(this.#repo(node))
      try {
        const { sets, broken } = await listManifests(repo).catch(() => ({ sets: [], broken: [] }))
        for (const b of broken) this.#corrupt.push(`node ${node}: set ${b.id}: ${b.code} ${b.message}`)
        for (const m of sets) {
          try {
            await verifyBackup(repo, m)
            this.#verified++
          } catch (error) {
            this.#corrupt.push(`node ${node}: ${m.method ?? 'entities'} ${m.type} ${m.id}: ${error instanceof Error ? error.message : String(error)}`)
          }
        }
      } finally {
        await repo.close()
      }
    }
  }

  get stats(): BackupStats {
    return { attempted: this.#attempted, taken: { ...this.#taken }, failed: { ...this.#failed }, verified: this.#verified, corrupt: [...this.#corrupt] }
  }
}
