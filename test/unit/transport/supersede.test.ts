import type { Connection } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { SUPERSEDE_AFTER_MS, supersedeOlderConnections } from '../../../transport/mesh-transport.ts'

interface FakeConnection {
  readonly id: string
  readonly status: 'open' | 'closing' | 'closed'
  readonly opened: number
  aborted?: string
}

/** `getConnections` over fake connections of one peer; records which ones were aborted. */
function fakeNode(conns: FakeConnection[]): { getConnections: () => Connection[]; asConnection: (c: FakeConnection) => Connection } {
  const asConnection = (c: FakeConnection): Connection =>
    ({
      id: c.id,
      status: c.status,
      remotePeer: 'peer',
      timeline: { open: c.opened },
      abort: (err: Error) => {
        c.aborted = err.message
      },
    }) as unknown as Connection
  return { getConnections: () => conns.map(asConnection), asConnection }
}

describe('supersedeOlderConnections', () => {
  it('aborts open connections to the same peer opened well before the new one, and nothing else', () => {
    const now = 100_000
    const stale: FakeConnection = { id: 'stale', status: 'open', opened: now - SUPERSEDE_AFTER_MS - 1 }
    const racing: FakeConnection = { id: 'racing', status: 'open', opened: now - SUPERSEDE_AFTER_MS + 500 }
    const closing: FakeConnection = { id: 'closing', status: 'closing', opened: now - 60_000 }
    const fresh: FakeConnection = { id: 'fresh', status: 'open', opened: now }
    const node = fakeNode([stale, racing, closing, fresh])
    supersedeOlderConnections(node, node.asConnection(fresh))
    expect(stale.aborted).toMatch(/superseded/)
    expect(racing.aborted).toBeUndefined()
    expect(closing.aborted).toBeUndefined()
    expect(fresh.aborted).toBeUndefined()
  })

  it('leaves a lone connection alone', () => {
    const only: FakeConnection = { id: 'only', status: 'open', opened: 5 }
    const node = fakeNode([only])
    supersedeOlderConnections(node, node.asConnection(only))
    expect(only.aborted).toBeUndefined()
  })
})
