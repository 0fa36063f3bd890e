import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { FIRST_REDIAL_MS, MAX_REDIAL_MS, PeerBook } from '../../../daemon/replication/peer-book.ts'

describe('PeerBook redial backoff', () => {
  it('doubles from 0.5 s, with jitter, up to the cap; a connection resets it', () => {
    const book = new PeerBook()
    book.remember('p1', '/ip4/10.0.0.1/tcp/4718/p2p/p1')
    const waits: number[] = []
    let now = 0
    for (let i = 0; i < 12; i++) {
      expect(book.dueForDial(now).map((d) => d.peerId)).toEqual(['p1'])
      book.dialFailed('p1', now)
      // Not due again until its backoff has passed.
      expect(book.dueForDial(now + 1)).toEqual([])
      let next = now + 1
      while (book.dueForDial(next).length === 0) next += 10
      waits.push(next - now)
      now = next
    }
    // Jitter keeps each wait in [base/2, base]; the base doubles from 0.5 s and stops at the cap.
    const bases = waits.map((_, i) => Math.min(MAX_REDIAL_MS, FIRST_REDIAL_MS * 2 ** i))
    waits.forEach((w, i) => {
      expect(w).toBeGreaterThanOrEqual((bases[i] as number) / 2)
      expect(w).toBeLessThanOrEqual((bases[i] as number) + 10)
    })
    expect(Math.max(...waits)).toBeLessThanOrEqual(MAX_REDIAL_MS + 10)
    book.connected('p1')
    book.disconnected('p1')
    expect(book.dueForDial(now).map((d) => d.peerId)).toEqual(['p1'])
  })

  it('makes every disconnected peer due at once when a connection comes up, and leaves connected ones alone', () => {
    const book = new PeerBook()
    book.remember('p1', '/ip4/10.0.0.1/tcp/4718/p2p/p1')
    book.remember('p2', '/ip4/10.0.0.2/tcp/4718/p2p/p2')
    book.remember('p3', '/ip4/10.0.0.3/tcp/4718/p2p/p3')
    for (let i = 0; i < 5; i++) {
      book.dialFailed('p1', 0)
      book.dialFailed('p2', 0)
    }
    book.connected('p3')
    expect(book.dueForDial(1)).toEqual([])
    book.dialAllSoon()
    expect(book.dueForDial(1).map((d) => d.peerId)).toEqual(['p1', 'p2'])
  })
})

describe('PeerBook file', () => {
  it('writes the file when an address is new, not when a sync session passes known ones again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'peer-book-'))
    try {
      const file = join(dir, 'peers.json')
      const book = new PeerBook(file)
      book.remember('p1', '/ip4/10.0.0.1/tcp/4718/p2p/p1')
      await book.flushed()
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual([{ peerId: 'p1', addrs: ['/ip4/10.0.0.1/tcp/4718/p2p/p1'] }])
      // Known addresses again (as after every session): nothing is written.
      await rm(file)
      book.remember('p1', '/ip4/10.0.0.1/tcp/4718/p2p/p1')
      await book.flushed()
      await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/)
      // A new one is written, first, and a reloaded book has both.
      book.remember('p1', '/ip4/10.0.0.9/tcp/4718/p2p/p1')
      await book.flushed()
      const reloaded = new PeerBook(file)
      await reloaded.load()
      expect(reloaded.dueForDial(0)).toEqual([{ peerId: 'p1', addrs: ['/ip4/10.0.0.9/tcp/4718/p2p/p1', '/ip4/10.0.0.1/tcp/4718/p2p/p1'] }])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('keeps at most 8 addresses per peer, the newest first', () => {
    const book = new PeerBook()
    for (let i = 0; i < 10; i++) book.remember('p1', `/ip4/10.0.0.${i}/tcp/4718/p2p/p1`)
    expect(book.dueForDial(0)[0]?.addrs).toEqual(Array.from({ length: 8 }, (_, i) => `/ip4/10.0.0.${9 - i}/tcp/4718/p2p/p1`))
  })
})
