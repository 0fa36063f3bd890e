import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../../daemon/config.ts'
import { gossipMeshParams } from '../../../transport/mesh-transport.ts'
import type { Member } from '../../../transport/membership.ts'
import { OverlayMaintainer, TRIM_GRACE_MS, type OverlayHost } from '../../../transport/overlay.ts'
import { decodeAnnouncement, encodeAnnouncement } from '../../../transport/membership.ts'

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

  it('refuses watermarks out of order', () => {
    expect(() => new OverlayMaintainer(fakeHost([], new Map()), { minConnections: 4, maxConnections: 3 })).toThrow(RangeError)
  })
})

describe('overlay settings', () => {
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
  it('round-trip, and an unknown version is refused', () => {
    const record = new Uint8Array([1, 2, 3])
    expect(decodeAnnouncement(encodeAnnouncement({ degree: 7, at: NOW, record }))).toEqual({ degree: 7, at: NOW, record })
    const bytes = encodeAnnouncement({ degree: 7, at: NOW, record })
    bytes[0] = 9
    expect(() => decodeAnnouncement(bytes)).toThrow(/version/)
  })
})
