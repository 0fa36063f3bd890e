import { Option, type Command } from 'commander'
import { defaultDataDir } from '../config.ts'
import { dataDirLayout } from '../data-dir.ts'
import { DaemonError } from '../errors.ts'
import type { HistoryPage, HistoryVerifyResult } from '../store/entity-store.ts'
import { SocketClient, enc, print } from './client.ts'

interface Common {
  dataDir?: string
  json?: boolean
}

/**
 * `meshsync history NS ID` and `meshsync verify-history` (docs/cli.md, docs/history.md), through
 * the running daemon's Unix socket.
 */
export function registerHistoryCommands(program: Command): void {
  common(program.command('history').description("show an entity's changes, newest first: who made each, when, what it wrote, which were concurrent"))
    .argument('<ns>')
    .argument('<id>')
    .addOption(new Option('--limit <n>', 'page size (1-1000)').argParser(positive).default(100))
    .option('--after <cursor>', 'start after this cursor (printed after a page that has more)')
    .option('--all', 'follow pages to the end')
    .action(async (ns: string, id: string, opts: Common & { limit: number; after?: string; all?: boolean }) => {
      const c = client(opts)
      let after = opts.after
      for (;;) {
        const q = new URLSearchParams({ limit: String(opts.limit) })
        if (after !== undefined) q.set('after', after)
        const page = await c.call<HistoryPage>('GET', `/v1/ns/${enc(ns)}/entities/${enc(id)}/history?${q}`)
        if (opts.json) print(page)
        else printPage(page, opts.all === true)
        if (!opts.all || page.next === undefined) break
        after = page.next
      }
    })

  common(program.command('verify-history').description('check the history index against the change log (exit 1 when they disagree)')).action(async (opts: Common) => {
    const result = await client(opts).call<HistoryVerifyResult>('POST', '/v1/history/verify')
    if (opts.json) print(result)
    else {
      console.log(`${result.ok ? 'ok' : 'MISMATCH'}: ${result.records} change records, ${result.entries} history entries, ${result.purged} purged`)
      for (const m of result.missing) console.log(`missing entry  ${m}`)
      for (const x of result.extra) console.log(`wrong entry    ${x}`)
    }
    if (!result.ok) process.exitCode = 1
  })
}

/** One line per change, then what is gone (on the last page) and how to read on. */
function printPage(page: HistoryPage, following: boolean): void {
  for (const item of page.items) {
    const parts = [item.time, `${item.origin}:${item.seq}`, item.fresh ? `${item.op} (new incarnation)` : item.op]
    const written = Object.entries(item.values).map(([f, v]) => `${f}=${JSON.stringify(v)}`)
    for (const f of item.unknownValues ?? []) written.push(`${f}=?`)
    if (written.length > 0) parts.push(written.join(' '))
    if (item.texts.length > 0) parts.push(`texts ${item.texts.join(',')}`)
    if (item.concurrentCount !== undefined) {
      const named = (item.concurrentWith ?? []).map((d) => `${d.origin}:${d.seq}`)
      parts.push(`concurrent with ${named.join(',')}${item.concurrentCount > named.length ? ` and ${item.concurrentCount - named.length} more` : ''}`)
    }
    console.log(parts.join('  '))
  }
  if (page.next === undefined && page.truncated) {
    console.log(`earlier changes are gone (${page.truncated.reason}): any of version ${JSON.stringify(page.truncated.before)} not listed`)
  }
  if (page.next !== undefined && !following) console.log(`more: --after ${page.next}`)
}

function common(cmd: Command): Command {
  return cmd.option('--data-dir <dir>', 'data directory of the node to talk to', process.env.MESHSYNC_DATA_DIR).option('--json', 'machine-readable output')
}

function client(opts: Common): SocketClient {
  return new SocketClient(dataDirLayout(opts.dataDir ?? defaultDataDir()).socket)
}

function positive(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new DaemonError('INVALID_ARGUMENT', `not a positive integer: ${value}`)
  return n
}
