import { execFileSync } from 'node:child_process'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { describe, expect, it } from 'vitest'
import { defaultConfig, loadConfig, type DaemonConfig } from '../../../daemon/config.ts'
import { meshsyncBin, repoRoot } from '../../helpers/daemon-process.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'

/**
 * docs/configuration.md against the config loader (daemon/config.ts): every key the loader keeps
 * is on the page, every key the page names is one the loader reads (probed by loading a file that
 * sets it), every default on the page is the loader's, and the flag and environment tables match
 * `meshsync start --help` and the variables the product code reads.
 */

const page = join(repoRoot, 'docs', 'configuration.md')
const example = join(repoRoot, 'deploy', 'config.example.json')

interface Row {
  readonly cells: readonly string[]
}

/** The table rows of one `## ` section of the page (header and separator rows left out). */
async function sectionRows(heading: string): Promise<Row[]> {
  const text = await readFile(page, 'utf8')
  const start = text.indexOf(`\n## ${heading}\n`)
  if (start < 0) throw new Error(`no "## ${heading}" section in docs/configuration.md`)
  const rest = text.slice(start + heading.length + 5)
  const end = rest.search(/\n## /)
  const body = end < 0 ? rest : rest.slice(0, end)
  const rows: Row[] = []
  for (const line of body.split('\n')) {
    if (!line.startsWith('|') || /^\|[-| ]+\|$/.test(line)) continue
    const cells = line.slice(1, -1).split(' | ').map((c) => c.trim())
    if (cells[0]?.startsWith('`')) rows.push({ cells })
  }
  return rows
}

const unquote = (cell: string): string => /^`([^`]+)`$/.exec(cell)?.[1] ?? cell

interface ConfigRow {
  readonly key: string
  readonly type: string
  readonly def: string
}

async function configRows(): Promise<ConfigRow[]> {
  return (await sectionRows('Config file')).map(({ cells }) => ({ key: unquote(cells[0] as string), type: cells[1] as string, def: cells[2] as string }))
}

/** How a page key names a setting: a plain path, one inside a namespace's entry, or one inside a schedule. */
function splitKey(key: string): { where: 'plain' | 'namespace' | 'schedule'; path: string[] } {
  if (key.startsWith('namespaces.<ns>.')) return { where: 'namespace', path: key.slice('namespaces.<ns>.'.length).split('.') }
  if (key.startsWith('backup.schedules[].')) return { where: 'schedule', path: key.slice('backup.schedules[].'.length).split('.') }
  return { where: 'plain', path: key.split('.') }
}

/** A schedule the loader accepts, to which a probed schedule key is added. */
const baseSchedule = (): Record<string, unknown> => ({ type: 'full', everyMs: 1000 })

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  const [head, ...rest] = path as [string, ...string[]]
  if (rest.length === 0) {
    if (value === undefined) delete obj[head]
    else obj[head] = value
    return
  }
  const child = (obj[head] ??= {}) as Record<string, unknown>
  setPath(child, rest, value)
}

function getPath(obj: unknown, path: readonly string[]): unknown {
  return path.reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj)
}

/** A config file that sets `key` to `value` (undefined: leaves it out), and where the loader puts it. */
function fileSetting(key: string, value: unknown): { file: Record<string, unknown>; read: (config: DaemonConfig) => unknown } {
  const { where, path } = splitKey(key)
  if (where === 'namespace') {
    const entry: Record<string, unknown> = {}
    if (value !== undefined) setPath(entry, path, value)
    return { file: { namespaces: { probe: entry } }, read: (c) => getPath(c.namespaces.probe, path) }
  }
  if (where === 'schedule') {
    const schedule = baseSchedule()
    setPath(schedule, path, value)
    return { file: { backup: { schedules: [schedule] } }, read: (c) => getPath(c.backup.schedules[0], path) }
  }
  const file: Record<string, unknown> = {}
  if (value !== undefined) setPath(file, path, value)
  return { file, read: (c) => getPath(c, path) }
}

/** Values to set a key to, from the type the page gives it; the loader must hand each back. */
function probeValues(row: ConfigRow): unknown[] {
  const choices = [...row.type.matchAll(/`"([^"]+)"`/g)].map((m) => m[1])
  if (choices.length > 0) return choices
  switch (row.type) {
    case 'integer':
      return [1234, 5678]
    case 'boolean':
      return [true, false]
    case 'string':
      return ['probe-a', 'probe-b']
    case 'path':
      return ['/probe/a', '/probe/b']
    case 'list of multiaddrs':
      return [['/ip4/127.0.0.1/tcp/4999'], []]
    case 'list of peer ids':
      return [['12D3KooWprobe'], []]
    case 'list of schedules':
      return [[{ type: 'incremental', everyMs: 5000 }], []]
    case 'object of indexes':
      return [{ byStatus: [['status', 'asc'], ['updatedAt', 'desc']] }, {}]
    default:
      throw new Error(`docs/configuration.md: ${row.key} has a type the test does not know how to probe: ${row.type}`)
  }
}

/** Page keys of every leaf setting of a loaded config (arrays of values are leaves). */
function pageKeys(config: DaemonConfig): string[] {
  const { dataDir: _dataDir, namespaces, backup, ...rest } = config
  const keys: string[] = []
  const walk = (value: unknown, prefix: string): void => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) keys.push(prefix)
    else for (const [k, v] of Object.entries(value)) walk(v, `${prefix}.${k}`)
  }
  for (const [k, v] of Object.entries(rest)) walk(v, k)
  for (const entry of Object.values(namespaces)) for (const k of Object.keys(entry)) keys.push(`namespaces.<ns>.${k}`)
  for (const [k, v] of Object.entries(backup)) {
    keys.push(`backup.${k}`)
    if (k !== 'schedules') continue
    for (const schedule of v as readonly Record<string, unknown>[]) {
      for (const [sk, sv] of Object.entries(schedule)) {
        if (sv !== null && typeof sv === 'object') for (const rule of Object.keys(sv)) keys.push(`backup.schedules[].${sk}.${rule}`)
        else keys.push(`backup.schedules[].${sk}`)
      }
    }
  }
  return keys
}

describe('docs/configuration.md', () => {
  const tempDir = useTempDirs('all')

  async function load(file: Record<string, unknown>): Promise<DaemonConfig> {
    const dir = await tempDir('meshsync-docs-')
    const path = join(dir, 'config.json')
    await writeFile(path, JSON.stringify(file))
    return loadConfig({ config: path, dataDir: dir }, {})
  }

  it('lists every setting the config loader keeps', async () => {
    const fromDefaults = pageKeys(defaultConfig('/x'))
    // Optional settings have no default; the example config sets every one of them (test/unit/deploy).
    const fromExample = pageKeys(await loadConfig({ config: example, dataDir: '/x' }, {}))
    const onPage = new Set((await configRows()).map((r) => r.key))
    const missing = [...new Set([...fromDefaults, ...fromExample])].filter((k) => !onPage.has(k))
    expect(missing, 'settings the loader keeps that docs/configuration.md does not list').toEqual([])
  })

  it('names only settings the loader reads: each one, set in a file, comes back from the loader', async () => {
    const rows = await configRows()
    expect(rows.length).toBeGreaterThan(20)
    const unknown: string[] = []
    for (const row of rows) {
      for (const value of probeValues(row)) {
        const { file, read } = fileSetting(row.key, value)
        let got: unknown
        try {
          got = read(await load(file))
        } catch (error) {
          got = error
        }
        if (!isDeepStrictEqual(got, value)) unknown.push(`${row.key} = ${JSON.stringify(value)} came back as ${got instanceof Error ? got.message : JSON.stringify(got)}`)
      }
    }
    expect(unknown, 'keys on docs/configuration.md the loader does not read').toEqual([])
  })

  it('gives the loader\'s default of every setting (none: absent; required: refused when left out)', async () => {
    const wrong: string[] = []
    for (const row of await configRows()) {
      const { file, read } = fileSetting(row.key, undefined)
      if (row.def === 'required') {
        await expect(load(file), `${row.key} is required`).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
        continue
      }
      const got = read(await load(file))
      const want = row.def === 'none' ? undefined : (JSON.parse(unquote(row.def)) as unknown)
      if (!isDeepStrictEqual(got, want)) wrong.push(`${row.key}: page says ${row.def}, the loader gives ${JSON.stringify(got)}`)
    }
    expect(wrong).toEqual([])
  })

  it('lists exactly the flags of `meshsync start`, each with a config key on the page', async () => {
    const help = execFileSync(process.execPath, [meshsyncBin, 'start', '--help'], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 })
    const flags = [...help.matchAll(/^\s+(--[a-z][a-z-]*)/gm)].map((m) => m[1]).filter((f) => f !== '--help')
    expect(flags.length).toBeGreaterThan(5)
    const rows = await sectionRows('Flags of `meshsync start`')
    expect(rows.map((r) => unquote(r.cells[0] as string)).sort()).toEqual([...flags].sort())
    const keys = new Set((await configRows()).map((r) => r.key))
    for (const { cells } of rows) if (cells[1] !== 'none') expect(keys, `${cells[0]} maps to ${cells[1]}`).toContain(unquote(cells[1] as string))
  })

  it('lists exactly the environment variables the product code reads', async () => {
    const read = new Set<string>()
    for (const dir of ['crdt', 'transport', 'daemon', 'bin']) {
      for (const entry of await readdir(join(repoRoot, dir), { recursive: true, withFileTypes: true })) {
        if (!entry.isFile() || !/\.(ts|mjs)$/.test(entry.name)) continue
        const source = await readFile(join(entry.parentPath, entry.name), 'utf8')
        for (const m of source.matchAll(/\benv\??\.([A-Z][A-Z0-9_]+)/g)) read.add(m[1] as string)
      }
    }
    expect(read.size).toBeGreaterThan(3)
    const rows = await sectionRows('Environment variables')
    expect(rows.map((r) => unquote(r.cells[0] as string)).sort()).toEqual([...read].sort())
  })
})
