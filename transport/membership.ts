import type { GossipSub } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { lpStream } from '@libp2p/utils'
import { CODE_P2P } from '@multiformats/multiaddr'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { Libp2p } from 'libp2p'

/**
 * Gossip topic on which every member announces itself: its signed peer record (libp2p's own
 * envelope, the one identify exchanges), its connection count and a timestamp. Relayed by
 * gossipsub through the overlay, so one announcement reaches every member.
 */
export const MEMBERS_TOPIC = 'meshsync/members/1'
/** Stream protocol on which a node hands a peer that just connected every member it knows (peer exchange). */
export const MEMBERS_PROTOCOL = '/meshsync/members/1.0.0'
/** How often a member of a small cluster announces itself (before jitter). */
export const MEMBER_ANNOUNCE_MS = 20_000
/** A member not heard from (announcement or connection) for this long is reported not alive (in a small cluster). */
export const MEMBER_ALIVE_MS = 3 * MEMBER_ANNOUNCE_MS
/**
 * Least average time between two announcements in the whole cluster: a member's period grows
 * with the members it knows, so what each node receives and verifies per minute stays flat in N.
 */
export const CLUSTER_ANNOUNCE_SPACING_MS = 2500
/** Least time between two announcements made because this node's degree changed band. */
const DEGREE_ANNOUNCE_MS = 5000

/** How often a member announces itself when it knows `members` others: 20 s, longer in a larger cluster ({@link CLUSTER_ANNOUNCE_SPACING_MS}). */
export function announcePeriodMs(members: number, baseMs = MEMBER_ANNOUNCE_MS): number {
  return Math.max(baseMs, (members + 1) * CLUSTER_ANNOUNCE_SPACING_MS)
}

/** How long a member may stay unheard before it is reported not alive: three announcement periods. */
export function aliveForMs(members: number, baseMs = MEMBER_ANNOUNCE_MS): number {
  return 3 * announcePeriodMs(members, baseMs)
}
/** Format version of an announcement. */
const ANNOUNCE_VERSION = 1
/** Largest signed peer record accepted (a record names a handful of addresses). */
const MAX_RECORD_BYTES = 4096
/** Most records one peer exchange carries. */
const MAX_EXCHANGE_RECORDS = 4096

/** A member of the cluster as this node knows it. */
export interface Member {
  readonly peerId: string
  /** Dialable addresses (without `/p2p/<id>`), from its signed peer record, identify or discovery. */
  readonly addrs: readonly string[]
  /** Connections it had when it last announced itself (undefined: not heard yet). */
  readonly degree: number | undefined
  /** When it was last heard from, ms since the epoch (0: only remembered, e.g. from before a restart). */
  readonly lastSeen: number
  readonly alive: boolean
}

interface Entry {
  addrs: string[]
  degree: number | undefined
  lastSeen: number
  /** The signed record last consumed (an equal one is not verified again). */
  record: Uint8Array | undefined
}

/** An announcement's fields. */
export interface Announcement {
  readonly degree: number
  readonly at: number
  readonly record: Uint8Array
}

export function encodeAnnouncement(a: Announcement): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, ANNOUNCE_VERSION)
  encoding.writeVarUint(e, a.degree)
  encoding.writeVarUint(e, a.at)
  encoding.writeVarUint8Array(e, a.record)
  return encoding.toUint8Array(e)
}

export function decodeAnnouncement(bytes: Uint8Array): Announcement {
  const d = decoding.createDecoder(bytes)
  const version = decoding.readVarUint(d)
  if (version !== ANNOUNCE_VERSION) throw new Error(`unknown member announcement version ${version}`)
  const degree = decoding.readVarUint(d)
  const at = decoding.readVarUint(d)
  const record = decoding.readVarUint8Array(d)
  if (record.length > MAX_RECORD_BYTES) throw new Error('member record too large')
  return { degree, at, record }
}

export interface MembershipInit {
  readonly privateKey: PrivateKey
  /** Peers not to learn as members (not on the allowlist, banned). */
  readonly denied: (peer: PeerId) => boolean
  /** Connections this node has now (announced with its record). */
  readonly degree: () => number
  /**
   * The band of a degree that matters to the peers' choices (e.g. below the low watermark, with
   * room, full, over): a change of degree within a band is not announced (default: every change).
   */
  readonly degreeBand?: (degree: number) => number
  /**
   * A member's announcement was accepted: it is up now (e.g. back from a restart or a partition),
   * wherever the announcement came from.
   */
  readonly heard?: (peerId: string) => void
  /** Whether to announce on the gossip topic (off when gossip is off: peer exchange alone). */
  readonly gossip: boolean
  readonly announceMs?: number
}

type Node = Libp2p<{ pubsub: GossipSub }>

/**
 * Cluster membership (docs/sync-protocol.md, Membership and the overlay): every member, its addresses and liveness, learnt
 * from any one bootstrap address. Built on libp2p's own pieces: signed peer records (verified, and
 * stored in the peer store, which the daemon persists in its data dir so a restarted node still
 * knows every member), gossipsub to spread them, and a peer exchange when a connection opens.
 */
export class Membership {
  readonly #node: Node
  readonly #init: MembershipInit
  readonly #self: string
  readonly #members = new Map<string, Entry>()
  #record: { addrs: string; bytes: Uint8Array } | undefined
  #timer: NodeJS.Timeout | undefined
  #soon: NodeJS.Timeout | undefined
  #running = false
  #lastAnnounce = 0
  #announcedBand: number | undefined

  constructor(node: Node, init: MembershipInit) {
    this.#node = node
    this.#init = init
    this.#self = node.peerId.toString()
  }

  /** Loads the members the peer store remembers, and starts announcing and answering exchanges. */
  async start(): Promise<void> {
    this.#running = true
    const node = this.#node
    for (const peer of await node.peerStore.all()) {
      if (peer.id.equals(node.peerId) || this.#init.denied(peer.id) || peer.addresses.length === 0) continue
      this.#entry(peer.id.toString()).addrs = peer.addresses.map((a) => a.multiaddr.toString())
    }
    node.addEventListener('peer:identify', (e) => {
      const { peerId, listenAddrs } = e.detail
      if (this.#init.denied(peerId)) return
      const entry = this.#entry(peerId.toString())
      entry.lastSeen = Date.now()
      if (listenAddrs.length > 0) entry.addrs = listenAddrs.map((a) => a.decapsulateCode(CODE_P2P).toString())
    })
    node.addEventListener('peer:discovery', (e) => {
      const { id, multiaddrs } = e.detail
      if (id.equals(node.peerId) || this.#init.denied(id)) return
      const entry = this.#entry(id.toString())
      if (multiaddrs.length > 0 && entry.addrs.length === 0) entry.addrs = multiaddrs.map((a) => a.decapsulateCode(CODE_P2P).toString())
    })
    node.addEventListener('peer:connect', (e) => {
      if (!this.#init.denied(e.detail)) this.#entry(e.detail.toString()).lastSeen = Date.now()
    })
    await node.handle(MEMBERS_PROTOCOL, (stream) => void this.#answerExchange(stream).catch(() => stream.abort(new Error('member exchange failed'))), {
      maxInboundStreams: 2,
      maxOutboundStreams: 2,
    })
    if (!this.#init.gossip) return
    const pubsub = node.services.pubsub
    pubsub.topicValidators.set(MEMBERS_TOPIC, async (_peer, message) => {
      try {
        const a = decodeAnnouncement(message.data)
        const learnt = await this.#consume(a.record)
        if (learnt === undefined) return TopicValidatorResult.Ignore
        const entry = this.#entry(learnt)
        entry.degree = a.degree
        entry.lastSeen = Math.max(entry.lastSeen, Math.min(a.at, Date.now()))
        this.#init.heard?.(learnt)
        return TopicValidatorResult.Accept
      } catch {
        return TopicValidatorResult.Reject
      }
    })
    pubsub.addEventListener('subscription-change', (e) => {
      // The first subscriber carries this node's first announcement; later ones learn it by peer
      // exchange or identify (an announcement per new neighbour flooded the cluster at startup).
      if (this.#lastAnnounce === 0 && e.detail.subscriptions.some((s) => s.topic === MEMBERS_TOPIC && s.subscribe)) this.announceSoon()
    })
    pubsub.subscribe(MEMBERS_TOPIC)
    const schedule = (): void => {
      this.#timer = setTimeout(() => {
        void this.announce()
        schedule()
      }, announcePeriodMs(this.#members.size, this.#init.announceMs) * (0.75 + Math.random() * 0.5))
      this.#timer.unref()
    }
    schedule()
  }

  stop(): void {
    this.#running = false
    clearTimeout(this.#timer)
    clearTimeout(this.#soon)
  }

  /** Every member this node knows, itself excepted. */
  /** How many members this node knows (without building the list). */
  get size(): number {
    return this.#members.size
  }

  members(now = Date.now()): Member[] {
    const aliveFor = aliveForMs(this.#members.size, this.#init.announceMs)
    return [...this.#members].map(([peerId, e]) => ({ peerId, addrs: e.addrs, degree: e.degree, lastSeen: e.lastSeen, alive: now - e.lastSeen < aliveFor }))
  }

  /** Announces this node shortly (a burst of new subscribers makes one announcement). */
  announceSoon(delayMs = 200 + Math.random() * 300): void {
    if (this.#soon !== undefined || !this.#running) return
    this.#soon = setTimeout(() => {
      this.#soon = undefined
      void this.announce()
    }, delayMs)
    this.#soon.unref()
  }

  /**
   * This node's connection count changed: when its band changed (see {@link MembershipInit.degreeBand})
   * it is announced again (at most every 5 s), so a node choosing whom to dial or to drop knows who
   * has room (docs/sync-protocol.md, Membership and the overlay).
   */
  degreeChanged(): void {
    const band = (this.#init.degreeBand ?? ((d: number) => d))(this.#init.degree())
    if (band === this.#announcedBand) return
    this.announceSoon(Math.max(200 + Math.random() * 300, this.#lastAnnounce + DEGREE_ANNOUNCE_MS - Date.now()))
  }

  /** Publishes this node's signed record and degree on the members topic. */
  async announce(): Promise<void> {
    if (!this.#running || !this.#init.gossip) return
    try {
      const record = await this.#ownRecord()
      if (record === undefined) return
      this.#lastAnnounce = Date.now()
      const degree = this.#init.degree()
      this.#announcedBand = (this.#init.degreeBand ?? ((d: number) => d))(degree)
      const data = encodeAnnouncement({ degree, at: this.#lastAnnounce, record })
      await this.#node.services.pubsub.publish(MEMBERS_TOPIC, data)
    } catch {
      // nobody subscribed yet: the next subscriber triggers another announcement
    }
  }

  /** Asks a peer for every member it knows (peer exchange), and learns them. Resolves with how many records were read. */
  async exchange(peerId: string, signal: AbortSignal = AbortSignal.timeout(10_000)): Promise<number> {
    const stream = await this.#node.dialProtocol(peerIdFromString(peerId), MEMBERS_PROTOCOL, { signal })
    const lp = lpStream(stream, { maxDataLength: MAX_RECORD_BYTES })
    let count = 0
    try {
      for (; count < MAX_EXCHANGE_RECORDS; count++) {
        const bytes = (await lp.read({ signal })).subarray()
        if (bytes.length === 0) break
        await this.#consume(bytes).catch(() => undefined)
      }
    } finally {
      await stream.close().catch(() => stream.abort(new Error('member exchange closed')))
    }
    return count
  }

  /** Writes every signed member record known (its own first), then an empty frame. */
  async #answerExchange(stream: Stream): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: MAX_RECORD_BYTES })
    const signal = AbortSignal.timeout(10_000)
    const own = await this.#ownRecord()
    if (own) await lp.write(own, { signal })
    let sent = 0
    for (const [peerId, e] of this.#members) {
      if (sent >= MAX_EXCHANGE_RECORDS - 1) break
      const record = e.record ?? (await this.#node.peerStore.get(peerIdFromString(peerId)).catch(() => undefined))?.peerRecordEnvelope
      if (!record) continue
      await lp.write(record, { signal })
      sent++
    }
    await lp.write(new Uint8Array(0), { signal })
    await stream.close({ signal })
  }

  /** Verifies a signed peer record, stores it in the peer store and learns its member; resolves with its peer id (undefined: itself or refused). */
  async #consume(bytes: Uint8Array): Promise<string | undefined> {
    const envelope = await RecordEnvelope.openAndCertify(bytes, PeerRecord.DOMAIN)
    const record = PeerRecord.createFromProtobuf(envelope.payload)
    const peer = record.peerId
    if (peer.equals(this.#node.peerId) || this.#init.denied(peer)) return undefined
    if (!peer.publicKey?.equals(envelope.publicKey)) throw new Error('peer record signed by another key')
    const peerId = peer.toString()
    const entry = this.#entry(peerId)
    if (entry.record !== undefined && equalBytes(entry.record, bytes)) return peerId
    await this.#node.peerStore.consumePeerRecord(bytes, { expectedPeer: peer })
    entry.record = bytes
    entry.addrs = record.multiaddrs.map((a) => a.toString())
    return peerId
  }

  /** This node's signed peer record, sealed again only when its addresses change. */
  async #ownRecord(): Promise<Uint8Array | undefined> {
    const multiaddrs = this.#node.getMultiaddrs().map((a) => a.decapsulateCode(CODE_P2P))
    if (multiaddrs.length === 0) return undefined
    const key = multiaddrs.map((a) => a.toString()).join(' ')
    if (this.#record?.addrs !== key) {
      const envelope = await RecordEnvelope.seal(new PeerRecord({ peerId: this.#node.peerId, multiaddrs }), this.#init.privateKey)
      this.#record = { addrs: key, bytes: envelope.marshal() }
    }
    return this.#record.bytes
  }

  #entry(peerId: string): Entry {
    let e = this.#members.get(peerId)
    if (!e) {
      e = { addrs: [], degree: undefined, lastSeen: 0, record: undefined }
      if (peerId !== this.#self) this.#members.set(peerId, e)
    }
    return e
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
