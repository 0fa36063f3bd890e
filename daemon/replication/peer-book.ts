import { readFile, rename, writeFile } from 'node:fs/promises'
import { counterOf, type VersionVector } from '../../crdt/index.ts'

/** Wait before the second dial of a remembered peer that is not connected (before jitter); doubles per failure. */
export const FIRST_REDIAL_MS = 500
/** Longest wait between two dials of a remembered peer that is not connected (before jitter). */
export const MAX_REDIAL_MS = 2000

/**
 * Wait before the next dial after `failures` failed ones in a row: 0.5 s doubling to 2 s, with
 * jitter. Capped low: on a LAN or an edge cluster a dial is cheap, and after a partition heals the
 * time to the next attempt is most of the time to converge.
 */
export function redialDelayMs(failures: number): number {
  const base = Math.min(MAX_REDIAL_MS, FIRST_REDIAL_MS * 2 ** Math.min(failures - 1, 6))
  return base * (0.5 + Math.random() * 0.5)
}

/** A peer as `/v1/peers` shows it. */
export interface PeerView {
  readonly peerId: string
  readonly nodeId: string | null
  readonly addrs: readonly string[]
  readonly connected: boolean
  readonly lastSyncAt: string | null
  /** Changes this node has that the peer had not, as of the last sync (null: never synced). */
  readonly behind: number | null
  /** Anti-entropy bytes received from and sent to the peer. */
  readonly bytesIn: number
  readonly bytesOut: number
  /** Gossip bytes received from the peer (as relay or publisher) and published to it. */
  readonly gossipBytesIn: number
  readonly gossipBytesOut: number
  readonly invalidInputs: number
}

interface PeerEntry {
  nodeId: string | null
  addrs: string[]
  connected: boolean
  lastSyncAt: number | null
  theirVv: VersionVector | null
  bytesIn: number
  bytesOut: number
  gossipBytesIn: number
  gossipBytesOut: number
  strikes: number
  bannedUntil: number
  /** Reconnect backoff state. */
  nextDialAt: number
  failures: number
}

/** Dialable addresses remembered per peer, the newest first. */
const MAX_ADDRS_PER_PEER = 8

/**
 * Every peer this node has known: connection state, last sync, traffic, strikes. Dialable
 * addresses are persisted to `file` so that a restarted node reconnects to its peers.
 */
export class PeerBook {
  readonly #file: string | undefined
  readonly #peers = new Map<string, PeerEntry>()
  #saving: Promise<void> = Promise.resolve()

  constructor(file?: string) {
    this.#file = file
  }

  /** Loads remembered peers (missing or unreadable file: none). */
  async load(): Promise<void> {
    if (!this.#file) return
    try {
      const saved = JSON.parse(await readFile(this.#file, 'utf8')) as { peerId: string; addrs: string[] }[]
      for (const { peerId, addrs } of saved) if (typeof peerId === 'string' && Array.isArray(addrs)) this.#entry(peerId).addrs = addrs.filter((a) => typeof a === 'string')
    } catch {
      // first start, or a damaged file: peers are found again by mDNS and bootstrap
    }
  }

  connected(peerId: string): void {
    const e = this.#entry(peerId)
    e.connected = true
    e.failures = 0
    e.nextDialAt = 0
  }

  /**
   * Makes every disconnected peer due for a dial now, whatever its backoff: a connection just
   * came up, so the network that kept the others away may be back too.
   */
  dialAllSoon(): void {
    for (const e of this.#peers.values()) if (!e.connected) e.nextDialAt = 0
  }

  disconnected(peerId: string): void {
    this.#entry(peerId).connected = false
  }

  /** Remembers a dialable address (with `/p2p/<peerId>`) for a peer. */
  remember(peerId: string, addr: string): void {
    const e = this.#entry(peerId)
    const known = e.addrs.includes(addr)
    // Every sync session passes the peer's addresses again: the file is written only when they change.
    if (known && e.addrs.length <= MAX_ADDRS_PER_PEER) return
    e.addrs = (known ? e.addrs : [addr, ...e.addrs]).slice(0, MAX_ADDRS_PER_PEER)
    this.#save()
  }

  /** Resolves once every write of the file asked for so far is done. */
  flushed(): Promise<void> {
    return this.#saving
  }

  synced(peerId: string, nodeId: string, theirVv: VersionVector, bytesIn: number, bytesOut: number): void {
    const e = this.#entry(peerId)
    e.nodeId = nodeId
    e.theirVv = theirVv
    e.lastSyncAt = Date.now()
    e.bytesIn += bytesIn
    e.bytesOut += bytesOut
  }

  /** Counts gossip traffic with a peer. */
  gossiped(peerId: string, bytesIn: number, bytesOut: number): void {
    const e = this.#entry(peerId)
    e.gossipBytesIn += bytesIn
    e.gossipBytesOut += bytesOut
  }

  /** Counts an invalid input; returns the peer's total. */
  strike(peerId: string): number {
    return ++this.#entry(peerId).strikes
  }

  ban(peerId: string, until: number): void {
    const e = this.#entry(peerId)
    e.bannedUntil = until
    e.strikes = 0
  }

  isBanned(peerId: string, now = Date.now()): boolean {
    return (this.#peers.get(peerId)?.bannedUntil ?? 0) > now
  }

  /** Disconnected, not banned peers whose backoff has elapsed, with the addresses to dial. */
  dueForDial(now = Date.now()): { peerId: string; addrs: string[] }[] {
    const out: { peerId: string; addrs: string[] }[] = []
    for (const [peerId, e] of this.#peers) {
      if (e.connected || e.bannedUntil > now || e.nextDialAt > now || e.addrs.length === 0) continue
      out.push({ peerId, addrs: e.addrs })
    }
    return out
  }

  /** A dial failed: back off exponentially (0.5 s doubling to 2 s, with jitter). */
  dialFailed(peerId: string, now = Date.now()): void {
    const e = this.#entry(peerId)
    e.failures++
    e.nextDialAt = now + redialDelayMs(e.failures)
  }

  views(mine: VersionVector): PeerView[] {
    return [...this.#peers].map(([peerId, e]) => ({
      peerId,
      nodeId: e.nodeId,
      addrs: e.addrs,
      connected: e.connected,
      lastSyncAt: e.lastSyncAt === null ? null : new Date(e.lastSyncAt).toISOString(),
      behind: e.theirVv === null ? null : behindBy(mine, e.theirVv),
      bytesIn: e.bytesIn,
      bytesOut: e.bytesOut,
      gossipBytesIn: e.gossipBytesIn,
      gossipBytesOut: e.gossipBytesOut,
      invalidInputs: e.strikes,
    }))
  }

  #entry(peerId: string): PeerEntry {
    let e = this.#peers.get(peerId)
    if (!e) {
      e = { nodeId: null, addrs: [], connected: false, lastSyncAt: null, theirVv: null, bytesIn: 0, bytesOut: 0, gossipBytesIn: 0, gossipBytesOut: 0, strikes: 0, bannedUntil: 0, nextDialAt: 0, failures: 0 }
      this.#peers.set(peerId, e)
    }
    return e
  }

  #save(): void {
    const file = this.#file
    if (!file) return
    const data = JSON.stringify([...this.#peers].filter(([, e]) => e.addrs.length > 0).map(([peerId, e]) => ({ peerId, addrs: e.addrs })))
    // Best effort and serialized: losing this file only means rediscovering peers.
    this.#saving = this.#saving.then(async () => {
      const tmp = `${file}.tmp`
      await writeFile(tmp, data, { mode: 0o600 })
      await rename(tmp, file)
    }).catch(() => undefined)
  }
}

/** How many changes `mine` has that `theirs` lacks. */
export function behindBy(mine: VersionVector, theirs: VersionVector): number {
  let n = 0
  for (const [origin, have] of Object.entries(mine)) n += Math.max(0, have - counterOf(theirs, origin))
  return n
}
