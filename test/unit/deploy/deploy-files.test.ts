import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { defaultConfig, loadConfig } from '../../../daemon/config.ts'
import { repoRoot } from '../../helpers/daemon-process.ts'

const example = join(repoRoot, 'deploy', 'config.example.json')

/** Dotted paths of every leaf setting (arrays and the per-namespace map count as leaves). */
function settingPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [prefix]
  return Object.entries(value).flatMap(([k, v]) => (prefix === '' && k === 'namespaces' ? ['namespaces'] : settingPaths(v, prefix ? `${prefix}.${k}` : k)))
}

describe('deploy/config.example.json', () => {
  it('is accepted by the daemon', async () => {
    const config = await loadConfig({ config: example, dataDir: '/var/lib/meshsync' }, {})
    expect(config.api.port).toBe(4717)
    expect(config.p2p.clusterKeyFile).toBe('/etc/meshsync/cluster.key')
    expect(config.namespaces.ledger).toEqual({ mode: 'two-way', conflicts: 'strict', indexes: { byAccount: [['account', 'asc'], ['updatedAt', 'desc']] } })
    expect(config.backup.schedules.map((s) => s.type)).toEqual(['full', 'incremental'])
  })

  it('shows every setting the config accepts', async () => {
    const file = JSON.parse(await readFile(example, 'utf8')) as Record<string, unknown>
    const { dataDir: _dataDir, ...settings } = defaultConfig('/x')
    // Optional settings have no default, so they are not in defaultConfig.
    const optional = ['p2p.clusterKeyFile', 'backup.target', 'backup.passphraseFile']
    const want = [...settingPaths(settings), ...optional].sort()
    expect(settingPaths(file).sort()).toEqual([...new Set(want)].sort())
    // Every namespace setting appears on some namespace; mode and conflicts on each.
    const namespaces = Object.values(file.namespaces as Record<string, object>)
    for (const ns of namespaces) expect(Object.keys(ns)).toEqual(expect.arrayContaining(['conflicts', 'mode']))
    expect([...new Set(namespaces.flatMap((ns) => Object.keys(ns)))].sort()).toEqual(['conflicts', 'indexes', 'mode'])
  })
})

describe('deploy/meshsync.service', () => {
  it('starts meshsync with the config in /etc, as its own user, with its data in /var/lib/meshsync', async () => {
    const unit = await readFile(join(repoRoot, 'deploy', 'meshsync.service'), 'utf8')
    expect(unit).toMatch(/^ExecStart=\S*meshsync start --config \/etc\/meshsync\/config\.json$/m)
    expect(unit).toMatch(/^User=meshsync$/m)
    expect(unit).toMatch(/^Environment=MESHSYNC_DATA_DIR=\/var\/lib\/meshsync$/m)
    expect(unit).toMatch(/^StateDirectory=meshsync$/m)
    expect(unit).toMatch(/^Restart=on-failure$/m)
    expect(unit).toMatch(/^NoNewPrivileges=yes$/m)
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=yes/m) // V8's JIT needs it off
  })

  it('tunes glibc malloc to hand freed memory back (arenas, mmap and trim thresholds)', async () => {
    const unit = await readFile(join(repoRoot, 'deploy', 'meshsync.service'), 'utf8')
    expect(unit).toMatch(/^Environment=MALLOC_ARENA_MAX=2$/m)
    expect(unit).toMatch(/^Environment=MALLOC_MMAP_THRESHOLD_=131072$/m)
    expect(unit).toMatch(/^Environment=MALLOC_TRIM_THRESHOLD_=1048576$/m)
  })
})
