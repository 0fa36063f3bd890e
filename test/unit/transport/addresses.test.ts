import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../../daemon/config.ts'
import { bootstrapAddressProblem, listenAddressProblem, peerIdOfAddress } from '../../../transport/addresses.ts'

const PEER = '12D3KooWKP6VNyfoPGV6bgPR3yeCveAy8tyAFbjQ93XnL5sCRp4i'

describe('bootstrap addresses', () => {
  it('takes a multiaddr with or without a peer id at its end, and says what is wrong with anything else', () => {
    expect(bootstrapAddressProblem(`/ip4/127.0.0.1/tcp/4911/p2p/${PEER}`)).toBeUndefined()
    expect(bootstrapAddressProblem(`/dns4/node-a.lan/tcp/4718/p2p/${PEER}`)).toBeUndefined()
    expect(bootstrapAddressProblem('/ip4/127.0.0.1/tcp/4911')).toBeUndefined()
    expect(peerIdOfAddress(`/ip4/127.0.0.1/tcp/4911/p2p/${PEER}`)).toBe(PEER)
    expect(peerIdOfAddress('/ip4/127.0.0.1/tcp/4911')).toBeUndefined()
    expect(bootstrapAddressProblem('127.0.0.1:4911')).toMatch(/is not a multiaddr/)
    expect(bootstrapAddressProblem('/ip4/127.0.0.1/tcp/4911/p2p/not-a-peer-id')).toMatch(/which is not a peer id/)
  })

  it('a node is refused to start with one that is not an address (flag or config file)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshsync-config-'))
    try {
      await expect(loadConfig({ dataDir: dir, bootstrap: ['127.0.0.1:4911'] }, {})).rejects.toThrow(ConfigError)
      await expect(loadConfig({ dataDir: dir, bootstrap: ['127.0.0.1:4911'] }, {})).rejects.toThrow(/^--bootstrap: 127\.0\.0\.1:4911 is not a multiaddr/)
      const good = [`/ip4/127.0.0.1/tcp/4911/p2p/${PEER}`, '/ip4/127.0.0.1/tcp/4912']
      expect((await loadConfig({ dataDir: dir, bootstrap: good }, {})).p2p.bootstrap).toEqual(good)
      const file = join(dir, 'config.json')
      await writeFile(file, JSON.stringify({ p2p: { bootstrap: [...good, '/ip4/10.0.0.2/tcp/4718/p2p/nope'] } }))
      await expect(loadConfig({ dataDir: dir }, {})).rejects.toThrow(`${file}: p2p.bootstrap: /ip4/10.0.0.2/tcp/4718/p2p/nope ends in "nope", which is not a peer id`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('listen addresses and the log level', () => {
  it('takes a TCP multiaddr without a peer id, and says what is wrong with anything else', () => {
    for (const ok of ['/ip4/0.0.0.0/tcp/4718', '/ip6/::/tcp/0', '/ip4/127.0.0.1/tcp/0']) expect(listenAddressProblem(ok), ok).toBeUndefined()
    expect(listenAddressProblem('/ip4/1.2.3/tcp/1')).toMatch(/is not a multiaddr/)
    expect(listenAddressProblem('0.0.0.0:4718')).toMatch(/is not a multiaddr/)
    expect(listenAddressProblem('/ip4/1.2.3.4/udp/1')).toMatch(/is not a TCP address/)
    expect(listenAddressProblem(`/ip4/0.0.0.0/tcp/4718/p2p/${PEER}`)).toMatch(/names a peer id/)
  })

  it('a node is refused to start with a bad listen address or log level (flag or config file), in one line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshsync-config-'))
    try {
      await expect(loadConfig({ dataDir: dir, listen: ['/ip4/1.2.3/tcp/1'] }, {})).rejects.toThrow(/^--listen: \/ip4\/1\.2\.3\/tcp\/1 is not a multiaddr/)
      await expect(loadConfig({ dataDir: dir, logLevel: 'loud' }, {})).rejects.toThrow('--log-level: "loud" is not a log level (one of trace, debug, info, warn, error, fatal, silent)')
      expect((await loadConfig({ dataDir: dir, logLevel: 'warn', listen: ['/ip4/127.0.0.1/tcp/0'] }, {})).log.level).toBe('warn')
      const file = join(dir, 'config.json')
      await writeFile(file, JSON.stringify({ p2p: { listen: ['/ip4/0.0.0.0/udp/4718'] } }))
      await expect(loadConfig({ dataDir: dir }, {})).rejects.toThrow(`${file}: p2p.listen: /ip4/0.0.0.0/udp/4718 is not a TCP address`)
      await writeFile(file, JSON.stringify({ log: { level: 'verbose' } }))
      await expect(loadConfig({ dataDir: dir }, {})).rejects.toThrow(ConfigError)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
