import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../../daemon/config.ts'
import { gossipMeshParams } from '../../../transport/mesh-transport.ts'
import type { Member } from '../../../transport/membership.ts'
import { degreeBand, OverlayMaintainer, RELIEVE_EVERY_MS, TRIM_GRACE_MS, type OverlayHost } from '../../../transport/overlay.ts'
import { aliveForMs, announcePeriodMs, decodeAnnouncement, encodeAnnouncement, MEMBER_ANNOUNCE_MS } from '../../../transport/membership.ts'

const NOW = 1_000_000

function member(peerId: string, degree?: number, alive = true): Member {
  return { peerId, addrs: [`/ip4/10.0.0.1/tcp/4718`], degree, lastSeen: alive ? NOW : 0, alive }
}

/** A host whose dials succeed (the peer becomes connected) unless listed in `failing`. */
function fakeHost(members: Member[], connected: Map<string, number>, failing = new Set<string>()): OverlayHost & { dialed: string[]; hungUp: string[] } {
  const host = {
    dialed: [] as string[],
    hungUp: [] as string[],
    connected: () => connected,
    members: () => members,
    dial: async (peerId: string) => {
      host.dialed.push(peerId)
      if (failing.has(peerId)) throw new Error('unreachable')
      connected.set(peerId, NOW)
    },
    hangUp: async (peerId: string) => {
      host.hungUp.push(peerId)
      connected.delete(peerId)
    },
  }
  return host
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('overlay maintainer', () => {
  it('dials members up to the low watermark, those with room first, and no more', async () => {
    const members = [member('full-1', 3), member('full-2', 3), member('room-1', 1), member('room-2', 2), member('room-3')]
    const connected = new Map<string, number>()
    const host = fakeHost(members, connected)
    const overlay = new OverlayMaintainer(host, { minConnections: 2, maxConnections: 3 })
    overlay.tick(NOW)
    await flush()
    expect(host.dialed).toHaveLength(2)
    expect(host.dialed.every((p) => p.startsWith('room-'))).toBe(true)
    expect(overlay.full()).toBe(true)
    overlay.tick(NOW + 10)
    await flush()
    expect(host.dialed).toHaveLength(2)
  })

  it('backs off a member whose dial failed, and dials another meanwhile', async () => {
    const members = [member('dead'), member('alive')]
    const connected = new Map<string, number>()
    const host = fakeHost(members, connected, new Set(['dead']))
    const overlay = new OverlayMaintainer(host, { minConnections: 2, maxConnections: 4, random: () => 0 })
    overlay.tick(NOW)
    await flush()
    expect(host.dialed.sort()).toEqual(['alive', 'dead'])
    overlay.tick(NOW + 100)
    await flush()
    expect(host.dialed.filter((p) => p === 'dead')).toHaveLength(1)
    overlay.tick(NOW + 60_000)
    await flush()
    expect(host.dialed.filter((p) => p === 'dead')).toHaveLength(2)
  })

  it('trims to the high watermark, dropping the peers with the most connections, never a fresh one', async () => {
    const members = [member('hub', 9), member('busy', 6), member('lonely', 1), member('fresh', 12)]
    const old = NOW - TRIM_GRACE_MS - 1
    const connected = new Map([['hub', old], ['busy', old], ['lonely', old], ['fresh', NOW]])
    const host = fakeHost(members, connected)
    const overlay = new OverlayMaintainer(host, { minConnections: 1, maxConnections: 2 })
    overlay.tick(NOW)
    await flush()
    expect(host.hungUp.sort()).toEqual(['busy', 'hub'])
    expect(host.dialed).toEqual([])
  })

  it('dials a member that just left last', async () => {
    const members = [member('left'), member('other')]
    const connected = new Map<string, number>()
    const host = fakeHost(members, connected)
    const overlay = new OverlayMaintainer(host, { minConnections: 1, maxConnections: 2, random: () => 0.99 })
    overlay.disconnected('left', NOW)
    overlay.tick(NOW)
    await flush()
    expect(host.dialed).toEqual(['other'])
  })

  it('probes a member not heard from lately while it has room (a split overlay joins again)', async () => {
    const members = [member('a'), member('b'), member('quiet', undefined, false)]
    const connected = new Map([['a', NOW], ['b', NOW]])
    const host = fakeHost(members, connected)
    const overlay = new OverlayMaintainer(host, { minConnections: 2, maxConnections: 3 })
    overlay.tick(NOW)
    await flush()
    expect(host.dialed).toEqual(['quiet'])
  })

  it('keeps a peer at or below the low watermark (a newcomer joining) when trimming, unless far over the high one', async () => {
    const old = NOW - TRIM_GRACE_MS - 1
    const members = [member('newcomer-1', 1), member('newcomer-2', 2), member('newcomer-3', 1), member('newcomer-4', 2), member('newcomer-5', 1), member('settled', 5)]
    const connected = new Map(members.map((m) => [m.peerId, old] as [string, number]))
    const host = fakeHost(members, connected)
    const overlay = new OverlayMaintainer(host, { minConnections: 2, maxConnections: 4 })
    overlay.tick(NOW)
    await flush()
    // Two over the high watermark (6 <= 1.5 x 4): the settled peer (5 > low 2) goes, the newcomers stay.
    expect(host.hungUp).toEqual(['settled'])

    // Far over (7 > 1.5 x 3): newcomers go too, the busiest first.
    const many = new Map(['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'].map((p) => [p, old] as [string, number]))
    const crowded = fakeHost(['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'].map((p, i) => member(p, i === 6 ? 2 : 1)), many)
    new OverlayMaintainer(crowded, { minConnections: 2, maxConnections: 3 }).tick(NOW)
    await flush()
    expect(crowded.hungUp).toHaveLength(4)
    expect(crowded.hungUp[0]).toBe('n7')
  })

  it('between the watermarks, leaves a peer over the high watermark now and then (a newcomer leaves its bootstrap peer)', async () => {
    const old = NOW - TRIM_GRACE_MS - 1
    const members = [member('bootstrap', 30), member('a', 4), member('b', 4), member('c', 4)]
    const connected = new Map([['bootstrap', old], ['a', old], ['b', old], ['c', old]])
    let roll = 0.5
    const host = fakeHost(members, connected)
    const overlay = new OverlayMaintainer(host, { minConnections: 3, maxConnections: 6, random: () => roll })
    overlay.tick(NOW)
    await flush()
    // 0.5 < (30 - 6) / 30: it leaves.
    expect(host.hungUp).toEqual(['bootstrap'])
    expect(host.dialed).toEqual([])

    // At the low watermark it leaves nobody; nor (rate limited) right after leaving one.
    connected.set('bootstrap', old)
    const atLow = fakeHost(members, new Map([['bootstrap', old], ['a', old], ['b', old]]))
    new OverlayMaintainer(atLow, { minConnections: 3, maxConnections: 6, random: () => 0 }).tick(NOW)
    overlay.tick(NOW + RELIEVE_EVERY_MS - 1)
    await flush()
    expect(atLow.hungUp).toEqual([])
    expect(host.hungUp).toEqual(['bootstrap'])

    // A roll above the excess share keeps it (so its peers do not all leave it at once).
    roll = 0.9
    overlay.tick(NOW + RELIEVE_EVERY_MS)
    await flush()
    expect(host.hungUp).toEqual(['bootstrap'])
  })

  it('makes every backed-off member due again when a peer connects while below the low watermark', async () => {
    const members = [member('flaky'), member('back')]
    const connected = new Map<string, number>()
    const failing = new Set(['flaky', 'back'])
    const host = fakeHost(members, connected, failing)
    const overlay = new OverlayMaintainer(host, { minConnections: 2, maxConnections: 3, random: () => 0 })
    overlay.tick(NOW)
    await flush()
    expect(host.dialed.sort()).toEqual(['back', 'flaky'])
    failing.clear()
    overlay.tick(NOW + 10)
    await flush()
    expect(host.dialed).toHaveLength(2)
    connected.set('back', NOW + 20)
    overlay.connected('back')
    overlay.tick(NOW + 30)
    await flush()
    expect(host.dialed.slice(2)).toEqual(['flaky'])
  })

  it('dials the members it remembers as soon as it starts, not a tick later (a node that restarted)', async () => {
    const members = [member('a', undefined, false), member('b', undefined, false)]
    const host = fakeHost(members, new Map())
    const overlay = new OverlayMaintainer(host, { minConnections: 3, maxConnections: 4 })
    overlay.start()
    try {
      await flush()
      expect(host.dialed.sort()).toEqual(['a', 'b'])
    } finally {
      overlay.stop()
    }
  })

  it('counts a peer being dialed that is connected already (its own dial won) once', async () => {
    const members = [member('a'), member('b'), member('c')]
    const connected = new Map<string, number>()
    const dials = new Map<string, PromiseWithResolvers<void>>()
    const host: OverlayHost & { dialed: string[] } = {
      dialed: [],
      connected: () => connected,
      members: () => members,
      // a and b answer only later; c is unreachable for now.
      dial: (peerId) => {
        host.dialed.push(peerId)
        if (peerId === 'c') return Promise.reject(new Error('unreachable'))
        const pending = Promise.withResolvers<void>()
        dials.set(peerId, pending)
        return pending.promise
      },
      hangUp: async () => undefined,
    }
    const overlay = new OverlayMaintainer(host, { minConnections: 3, maxConnections: 4, random: () => 0 })
    overlay.tick(NOW)
    await flush()
    expect(host.dialed.sort()).toEqual(['a', 'b', 'c'])
    // a and b dialed this node meanwhile: 2 peers, 1 short of the low watermark.
    connected.set('a', NOW).set('b', NOW)
    expect(overlay.full()).toBe(false)
    overlay.tick(NOW + 60_000)
    await flush()
    expect(host.dialed.filter((p) => p === 'c')).toHaveLength(2)
    for (const d of dials.values()) d.resolve()
  })

  it('forgets the backoff of a member heard announcing itself, and dials it at once', async () => {
    const members = [member('restarted')]
    const connected = new Map<string, number>()
    const failing = new Set(['restarted'])
    const host = fakeHost(members, connected, failing)
    const overlay = new OverlayMaintainer(host, { minConnections: 2, maxConnections: 3, random: () => 0 })
    for (let i = 0; i < 3; i++) {
      overlay.tick(NOW + i * 60_000)
      await flush()
    }
    expect(host.dialed).toHaveLength(3)
    const backoff = overlay.backoff('restarted')
    expect(backoff?.failures).toBe(3)
    expect(backoff?.dueAt).toBeGreaterThan(NOW + 2 * 60_000 + 1000)
    overlay.tick(NOW + 2 * 60_000 + 10)
    await flush()
    expect(host.dialed).toHaveLength(3)
    failing.clear()
    overlay.heard('restarted')
    expect(overlay.backoff('restarted')).toBeUndefined()
    overlay.tick(NOW + 2 * 60_000 + 20)
    await flush()
    expect(host.dialed).toHaveLength(4)
    expect(connected.has('restarted')).toBe(true)
    // Heard while connected, or never dialed: nothing changes.
    overlay.heard('restarted')
    overlay.heard('unknown')
    overlay.tick(NOW + 2 * 60_000 + 30)
    await flush()
    expect(host.dialed).toHaveLength(4)
  })

  it('refuses watermarks out of order', () => {
    expect(() => new OverlayMaintainer(fakeHost([], new Map()), { minConnections: 4, maxConnections: 3 })).toThrow(RangeError)
  })
})

describe('overlay settings', () => {
  it('a degree band changes only where the overlay\'s choices change', () => {
    expect([0, 5, 6, 11, 12, 13, 20].map((d) => degreeBand(d, 6, 12))).toEqual([0, 0, 1, 1, 2, 3, 3])
  })


  it('gossipsub mesh degree fits within the watermarks', () => {
    expect(gossipMeshParams(6, 12)).toEqual({ D: 6, Dlo: 4, Dhi: 12, Dout: 3 })
    expect(gossipMeshParams(2, 3)).toEqual({ D: 2, Dlo: 1, Dhi: 3, Dout: 0 })
  })

  it('p2p.minConnections and p2p.maxConnections default to 6 and 12 and must be in order', async () => {
    const { mkdtemp, rm, writeFile } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'meshsync-overlay-'))
    try {
      const defaults = await loadConfig({ dataDir: dir })
      expect([defaults.p2p.minConnections, defaults.p2p.maxConnections]).toEqual([6, 12])
      await writeFile(join(dir, 'config.json'), JSON.stringify({ p2p: { minConnections: 20 } }))
      expect((await loadConfig({ dataDir: dir })).p2p.maxConnections).toBe(20)
      await writeFile(join(dir, 'config.json'), JSON.stringify({ p2p: { minConnections: 5, maxConnections: 3 } }))
      await expect(loadConfig({ dataDir: dir })).rejects.toThrow(ConfigError)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('member announcements', () => {
  it('a member announces less often in a larger cluster, so announcements per node per minute stay flat in N', () => {
    expect(announcePeriodMs(7)).toBe(MEMBER_ANNOUNCE_MS)
    const perNodePerMinute = (n: number): number => (n * 60_000) / announcePeriodMs(n - 1)
    expect(perNodePerMinute(48)).toBeLessThanOrEqual(perNodePerMinute(8) * 1.01)
    expect(perNodePerMinute(200)).toBeLessThanOrEqual(perNodePerMinute(8) * 1.01)
    expect(aliveForMs(47)).toBe(3 * announcePeriodMs(47))
    expect(aliveForMs(47)).toBeGreaterThan(aliveForMs(7))
  })


  it('round-trip, and an unknown version is refused', () => {
    const record = new Uint8Array([1, 2, 3])
    expect(decodeAnnouncement(encodeAnnouncement({ degree: 7, at: NOW, record }))).toEqual({ degree: 7, at: NOW, record })
    const bytes = encodeAnnouncement({ degree: 7, at: NOW, record })
    bytes[0] = 9
    expect(() => decodeAnnouncement(bytes)).toThrow(/version/)
  })
})
