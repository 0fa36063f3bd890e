import { execFileSync, spawnSync } from 'node:child_process'
import { isProcessAlive } from '../../daemon/process-alive.ts'

/**
 * Network namespaces for a chaos run: one per node (`<prefix><pid>-n<i>`, its `eth0` a veth into
 * the bridge, address 10.214.0.<i+1>/24) and one holding the bridge (`<prefix><pid>-br`), so the
 * host's interfaces are never touched. Faults are nftables rule sets inside the node namespaces
 * (table `inet chaos`), rewritten whole on every change, and link down/up of `eth0`.
 * Namespaces of runs whose process is gone are removed (with the daemons in them) on setup.
 */

export const NETNS_PREFIX = 'mschaos-'
export const SUBNET = '10.214.0'

let namespacesProbe: string | undefined | null = null

/**
 * Why network namespaces cannot be made here, or undefined when they can. Probed once per
 * process by making (and removing) a throwaway namespace: root is not enough, `ip netns add`
 * also needs CAP_SYS_ADMIN (a container often runs as root without it).
 */
export function namespacesUnavailable(): string | undefined {
  if (namespacesProbe === null) namespacesProbe = probeNamespaces()
  return namespacesProbe
}

function probeNamespaces(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  if (list.error) return `\`ip\` (iproute2) is not available: ${list.error.message}`
  if (list.status !== 0) return `\`ip netns\` does not work here: ${list.stderr.trim()}`
  const name = `${NETNS_PREFIX}probe-${process.pid}`
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' })
  if (add.status !== 0) return `cannot create a network namespace (\`ip netns add\` failed; root without CAP_SYS_ADMIN?): ${add.stderr.trim() || add.error?.message || `exit ${add.status}`}`
  spawnSync('ip', ['netns', 'del', name])
  return undefined
}

/** Why netns mode (namespaces and nftables) cannot run here, or undefined when it can. */
export function netnsUnavailable(): string | undefined {
  const namespaces = namespacesUnavailable()
  if (namespaces !== undefined) return namespaces
  const nftProbe = spawnSync('nft', ['--version'], { encoding: 'utf8' })
  if (nftProbe.error) return `\`nft\` (nftables) is not available: ${nftProbe.error.message}`
  return undefined
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}


function deleteNamespace(name: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout ?? ''
  for (const pid of pids.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL')
    } catch {
      // already gone
    }
  }
  spawnSync('ip', ['netns', 'del', name])
}

/** Removes namespaces (and their processes) left by chaos runs whose process is gone. */
export function removeLeftovers(): string[] {
  const removed: string[] = []
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? ''
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const match = new RegExp(`^${NETNS_PREFIX}(\\d+)-(?:s\\d+-)?(n\\d+|br)$`).exec(name)
    if (!match || isProcessAlive(Number(match[1]))) continue
    deleteNamespace(name)
    removed.push(name)
  }
  return removed
}

/** The network of one run. */
export class ChaosNetwork {
  readonly size: number
  readonly bridge: string
  readonly namespaces: readonly string[]
  readonly addresses: readonly string[]
  #up = false

  constructor(size: number, tag = String(process.pid)) {
    this.size = size
    this.bridge = `${NETNS_PREFIX}${tag}-br`
    this.namespaces = Array.from({ length: size }, (_, i) => `${NETNS_PREFIX}${tag}-n${i}`)
    this.addresses = Array.from({ length: size }, (_, i) => `${SUBNET}.${i + 1}`)
  }

  setup(): void {
    removeLeftovers()
    this.teardown()
    this.#up = true
    ip('netns', 'add', this.bridge)
    ip('-n', this.bridge, 'link', 'set', 'lo', 'up')
    ip('-n', this.bridge, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', this.bridge, 'link', 'set', 'br0', 'up')
    this.namespaces.forEach((ns, i) => {
      ip('netns', 'add', ns)
      ip('-n', this.bridge, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
      ip('-n', this.bridge, 'link', 'set', `v${i}`, 'master', 'br0')
      ip('-n', this.bridge, 'link', 'set', `v${i}`, 'up')
      ip('-n', ns, 'link', 'set', 'lo', 'up')
      ip('-n', ns, 'addr', 'add', `${this.addresses[i]}/24`, 'dev', 'eth0')
      ip('-n', ns, 'link', 'set', 'eth0', 'up')
    })
    this.applyRules(new Set(), new Map())
  }

  /** `ip netns exec` prefix that runs a command in node `i`'s namespace. */
  wrapper(i: number): string[] {
    return ['ip', 'netns', 'exec', this.namespaces[i] as string]
  }

  /**
   * Installs the whole filter state: `blocked` holds directed pairs "a>b" (packets from node a
   * to node b are dropped, at a's output and at b's input); `loss` maps a node to the percentage
   * of packets from other nodes it drops on input (nftables `numgen random`).
   */
  applyRules(blocked: ReadonlySet<string>, loss: ReadonlyMap<number, number>): void {
    this.namespaces.forEach((ns, i) => {
      const input: string[] = []
      const output: string[] = []
      for (const pair of blocked) {
        const [a, b] = pair.split('>').map(Number) as [number, number]
        if (b === i) input.push(`ip saddr ${this.addresses[a]} drop`)
        if (a === i) output.push(`ip daddr ${this.addresses[b]} drop`)
      }
      const pct = loss.get(i) ?? 0
      if (pct > 0) input.push(`ip saddr ${SUBNET}.0/24 numgen random mod 100 < ${pct} drop`)
      const rules = [
        'table inet chaos',
        'delete table inet chaos',
        'table inet chaos {',
        `  chain input { type filter hook input priority 0; policy accept; ${input.map((r) => `${r}; `).join('')}}`,
        `  chain output { type filter hook output priority 0; policy accept; ${output.map((r) => `${r}; `).join('')}}`,
        '}',
      ].join('\n')
      execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules, stdio: ['pipe', 'ignore', 'pipe'] })
    })
  }

  /** Link of node `i` (its veth in the node namespace) down or up. */
  setLink(i: number, up: boolean): void {
    ip('-n', this.namespaces[i] as string, 'link', 'set', 'eth0', up ? 'up' : 'down')
  }

  /** Removes every namespace of this run (killing whatever still runs in them). */
  teardown(): void {
    for (const ns of [...this.namespaces, this.bridge]) deleteNamespace(ns)
    this.#up = false
  }

  get up(): boolean {
    return this.#up
  }
}
