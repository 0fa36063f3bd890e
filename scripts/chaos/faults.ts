import { sleep, type ChaosCluster, type ChaosNode } from './cluster.ts'
import type { ScheduledFault } from './schedule.ts'

/** What happened to one scheduled fault. */
export interface FaultEvent {
  readonly index: number
  readonly kind: string
  readonly nodes: readonly number[]
  readonly detail: string
  readonly injectedAt: number
  healedAt?: number
  error?: string
}

/** Injects and heals faults on a cluster; network faults are rendered into nftables rules. */
export class Nemesis {
  readonly #cluster: ChaosCluster
  readonly #t0: number
  readonly #blocked = new Set<string>()
  readonly #loss = new Map<number, number>()
  readonly #linksDown = new Set<number>()
  readonly #killed = new Set<number>()
  readonly #full = new Set<number>()
  readonly events: FaultEvent[] = []

  constructor(cluster: ChaosCluster, t0: number) {
    this.#cluster = cluster
    this.#t0 = t0
  }

  #n(i: number): ChaosNode {
    return this.#cluster.nodes[i] as ChaosNode
  }

  #apply(): void {
    this.#cluster.network?.applyRules(this.#blocked, this.#loss)
  }

  /**
   * Plays one scheduled fault: waits for its time (`at` ms after the start this nemesis was made
   * with), injects it, logs it, holds it for its duration and heals everything; resolves with its
   * event once healed.
   */
  async play(f: ScheduledFault, log: (line: string) => void): Promise<FaultEvent> {
    const wait = this.#t0 + f.at - Date.now()
    if (wait > 0) await sleep(wait)
    const event = await this.inject(f)
    log(`  ${(event.injectedAt / 1000).toFixed(1)}s  #${f.index} ${f.kind}: ${event.detail} (${f.duration} ms)`)
    await sleep(f.duration)
    await this.healAll(event)
    return event
  }

  /** Injects `f`; resolves with its event (also kept in `events`). */
  async inject(f: ScheduledFault): Promise<FaultEvent> {
    const n = this.#cluster.nodes.length
    let detail = ''
    let acted: readonly number[] = f.nodes
    switch (f.kind) {
      case 'partition-halves':
      case 'isolate-one': {
        const [g1, g2] = f.groups as [number[], number[]]
        for (const a of g1) for (const b of g2) this.#blocked.add(`${a}>${b}`).add(`${b}>${a}`)
        detail = `${JSON.stringify(g1)} | ${JSON.stringify(g2)}`
        this.#apply()
        break
      }
      case 'one-way-cut':
      case 'ring-majorities':
        for (const c of f.cuts) this.#blocked.add(c)
        detail = f.kind === 'ring-majorities' ? `ring ${JSON.stringify(f.groups[0])}` : f.cuts.join(' ')
        this.#apply()
        break
      case 'packet-loss':
        for (const i of f.nodes) this.#loss.set(i, f.lossPct)
        detail = `${f.lossPct}% on ${JSON.stringify(f.nodes)}`
        this.#apply()
        break
      case 'link-down':
        for (const i of f.nodes) {
          this.#cluster.network?.setLink(i, false)
          this.#linksDown.add(i)
        }
        detail = `links ${JSON.stringify(f.nodes)}`
        break
      case 'disk-full': {
        const disks = this.#cluster.disks
        if (!disks) throw new Error('disk-full needs the chaos disks (netns mode)')
        const bytes = await Promise.all(f.nodes.map(async (i) => {
          this.#full.add(i)
          return disks.fill(i)
        }))
        detail = `disk full on ${JSON.stringify(f.nodes)} (ballast ${bytes.map((b) => `${Math.round(b / 1024 / 1024)} MiB`).join(', ')})`
        break
      }
      case 'kill9-restart':
        await Promise.all(f.nodes.map(async (i) => {
          this.#killed.add(i)
          await this.#n(i).kill9()
        }))
        detail = `kill -9 ${JSON.stringify(f.nodes)}`
        break
      case 'sigstop':
        for (const i of f.nodes) this.#n(i).pause()
        detail = `SIGSTOP ${JSON.stringify(f.nodes)}`
        break
      case 'kill-neighbourhood': {
        const center = f.nodes[0] as number
        const neighbours = await this.#neighbours(center)
        await Promise.all(neighbours.map(async (i) => {
          this.#killed.add(i)
          await this.#n(i).kill9()
        }))
        detail = `kill -9 the ${neighbours.length} peers of node ${center}: ${JSON.stringify(neighbours)}`
        acted = neighbours
        break
      }
      case 'restart-all':
        await Promise.all(Array.from({ length: n }, async (_, i) => {
          this.#killed.add(i)
          await this.#n(i).kill9()
        }))
        detail = 'kill -9 every node'
        break
    }
    const event: FaultEvent = { index: f.index, kind: f.kind, nodes: acted, detail, injectedAt: Date.now() - this.#t0 }
    this.events.push(event)
    return event
  }

  /** The nodes node `i` is connected to now (none when it does not answer). */
  async #neighbours(i: number): Promise<number[]> {
    const peers = await this.#n(i).api.get<{ peerId: string; connected: boolean }[]>('/v1/peers', 5_000).catch(() => [])
    const connected = new Set(peers.filter((p) => p.connected).map((p) => p.peerId))
    return this.#cluster.nodes.filter((node) => connected.has(node.spec.peerId) && node.spec.index !== i).map((node) => node.spec.index)
  }

  /** Undoes everything: disks freed, rules flushed, links up, paused nodes continued, killed nodes restarted. */
  async healAll(event?: FaultEvent): Promise<void> {
    try {
      await Promise.all([...this.#full].map((i) => this.#cluster.disks?.free(i)))
      this.#full.clear()
      this.#blocked.clear()
      this.#loss.clear()
      this.#apply()
      for (const i of this.#linksDown) this.#cluster.network?.setLink(i, true)
      this.#linksDown.clear()
      for (const node of this.#cluster.nodes) node.resume()
      const killed = [...this.#killed]
      this.#killed.clear()
      await Promise.all(killed.map((i) => this.#n(i).start()))
    } catch (error) {
      if (event) event.error = String(error)
      throw error
    } finally {
      if (event) event.healedAt = Date.now() - this.#t0
    }
  }

  /** Whether node `i`'s disk is being held full. */
  filling(i: number): boolean {
    return this.#full.has(i)
  }

  /** Counts of injected faults by kind. */
  countsByKind(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const e of this.events) out[e.kind] = (out[e.kind] ?? 0) + 1
    return out
  }
}
