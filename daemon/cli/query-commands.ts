import { Option, type Command } from 'commander'
import { defaultDataDir } from '../config.ts'
import { dataDirLayout } from '../data-dir.ts'
import { DaemonError } from '../errors.ts'
import { ClientError, SocketClient, enc } from './client.ts'

interface Common {
  dataDir?: string
  json?: boolean
}

interface IndexView {
  ns: string
  name: string
  fields?: { path: string; dir: string }[]
  source?: string
  state: string
  built: number
  total: number
}

interface QueryAnswer {
  items?: { id: string; value: unknown }[]
  count?: number
  next?: string
  plan?: { type: string; index?: string; order: string; keysScanned: number; entitiesExamined: number }
}

/**
 * `meshsync query` and `meshsync index create|list|drop|verify` (docs/cli.md, docs/queries.md),
 * through the running daemon's Unix socket.
 */
export function registerQueryCommands(program: Command): void {
  common(program.command('query').description('query a namespace: entities matching a where (JSON), sorted, paged (docs/queries.md)'))
    .argument('<ns>')
    .argument('[where]', 'the where, as JSON (default: {}, every entity)')
    .option('--sort <field...>', 'sort keys, each field or field:desc')
    .addOption(new Option('--limit <n>', 'page size (1-1000, default 100)').argParser(positive))
    .option('--fields <list>', 'only these value fields (comma-separated paths)')
    .option('--count', 'print the number of matches only')
    .option('--explain', 'print the plan (index used, keys scanned, entities examined)')
    .option('--all', 'follow pages to the end')
    .option('--watch', 'a live query: print the matches, then each entity entering, changing within or leaving them (Ctrl-C to stop)')
    .action(async (ns: string, whereText: string | undefined, opts: Common & { sort?: string[]; limit?: number; fields?: string; count?: boolean; explain?: boolean; all?: boolean; watch?: boolean }) => {
      const c = client(opts)
      let where: unknown = {}
      if (whereText !== undefined) {
        try {
          where = JSON.parse(whereText) as unknown
        } catch {
          throw new DaemonError('INVALID_ARGUMENT', 'the where is not valid JSON')
        }
      }
      const body: Record<string, unknown> = { where }
      if (opts.sort) body.sort = opts.sort
      if (opts.fields) body.fields = opts.fields.split(',').map((f) => f.trim()).filter((f) => f.length > 0)
      if (opts.explain) body.explain = true
      if (opts.watch) {
        const refused = (['limit', 'count', 'all'] as const).find((o) => opts[o] !== undefined)
        if (refused) throw new DaemonError('INVALID_ARGUMENT', `--watch follows every match: it does not take --${refused}`)
        return watchQuery(c, ns, body, opts.json === true)
      }
      body.limit = opts.limit ?? 100
      if (opts.count) body.count = true
      for (;;) {
        const answer = await c.call<QueryAnswer>('POST', `/v1/ns/${enc(ns)}/query`, body)
        if (opts.json) console.log(JSON.stringify(answer))
        else {
          if (answer.count !== undefined) console.log(String(answer.count))
          for (const item of answer.items ?? []) console.log(`${item.id}\t${JSON.stringify(item.value)}`)
          const plan = answer.plan
          if (plan && opts.explain) console.log(`plan\t${plan.type}${plan.index ? ` ${plan.index}` : ''}, order ${plan.order}, ${plan.keysScanned} keys scanned, ${plan.entitiesExamined} entities examined`)
          else if (plan?.type === 'scan') console.error('meshsync: answered by a scan (no index serves this query; see meshsync index create)')
        }
        if (!opts.all || answer.next === undefined) break
        body.cursor = answer.next
      }
    })

  const index = program.command('index').description('secondary indexes of a namespace (docs/queries.md)')

  common(index.command('create').description('create an index (built in the background; queries use it once ready)'))
    .argument('<ns>')
    .argument('<name>')
    .argument('<fields...>', 'indexed fields, each path or path:desc')
    .action(async (ns: string, name: string, fields: string[], opts: Common) => {
      const view = await client(opts).call<IndexView>('PUT', indexPath(ns, name), { fields })
      if (opts.json) return console.log(JSON.stringify(view))
      console.log(`index ${ns}/${name} (${describe(view)}): ${view.state}`)
    })

  common(index.command('list').description('list indexes with their build progress'))
    .argument('[ns]', 'only this namespace')
    .action(async (ns: string | undefined, opts: Common) => {
      const c = client(opts)
      const list = ns !== undefined ? (await c.call<{ indexes: IndexView[] }>('GET', `/v1/ns/${enc(ns)}/indexes`)).indexes : (await c.call<{ indexes: IndexView[] }>('GET', '/v1/status')).indexes
      if (opts.json) return console.log(JSON.stringify(list))
      if (list.length === 0) return console.log('no indexes')
      for (const i of list) console.log(`${i.ns}/${i.name}\t${i.fields ? describe(i) : ''}\t${i.state}\t${i.built}/${i.total}${i.source ? `\t${i.source}` : ''}`)
    })

  common(index.command('drop').description('drop an index and its entries'))
    .argument('<ns>')
    .argument('<name>')
    .action(async (ns: string, name: string, opts: Common) => {
      const result = await client(opts).call('DELETE', indexPath(ns, name))
      if (opts.json) return console.log(JSON.stringify(result))
      console.log(`dropped index ${ns}/${name}`)
    })

  common(index.command('verify').description('check indexes against a full scan of the namespace (exit 1 when one disagrees)'))
    .argument('<ns>')
    .argument('[name]', 'only this index (default: every index of the namespace)')
    .action(async (ns: string, name: string | undefined, opts: Common) => {
      const c = client(opts)
      const names = name !== undefined ? [name] : (await c.call<{ indexes: IndexView[] }>('GET', `/v1/ns/${enc(ns)}/indexes`)).indexes.map((i) => i.name)
      let bad = 0
      for (const n of names) {
        const r = await c.call<{ ok: boolean; state: string; entries: number; expected: number; missing: string[]; extra: string[] }>('POST', `${indexPath(ns, n)}/verify`)
        if (!r.ok) bad++
        if (opts.json) console.log(JSON.stringify({ name: n, ...r }))
        else console.log(`${ns}/${n}\t${r.ok ? 'ok' : 'MISMATCH'}\t${r.state}\t${r.entries} entries, ${r.expected} expected${r.missing.length > 0 ? `\tmissing ${r.missing.join(',')}` : ''}${r.extra.length > 0 ? `\textra ${r.extra.join(',')}` : ''}`)
      }
      if (bad > 0) throw new DaemonError('INVALID_ARGUMENT', `${bad} index(es) of ${ns} disagree with a full scan`)
    })
}

/**
 * `meshsync query --watch`: prints a live query's events as they come (docs/queries.md, Live
 * queries), one line each (`--json`: `{event, cursor?, data}`), until Ctrl-C or the daemon ends
 * the stream (a one-line error with its code).
 */
async function watchQuery(c: SocketClient, ns: string, body: Record<string, unknown>, json: boolean): Promise<void> {
  const ac = new AbortController()
  process.once('SIGINT', () => ac.abort())
  let ended: ClientError | undefined
  try {
    await c.stream(
      `/v1/ns/${enc(ns)}/query`,
      (event) => {
        const type = event.event ?? 'message'
        const data = JSON.parse(event.data) as { id?: string; value?: unknown; deleted?: boolean; count?: number; cursor?: string; code?: string; message?: string; plan?: QueryAnswer['plan'] }
        if (type === 'end') ended = ClientError.fromResponse(0, { error: data })
        if (json) return console.log(JSON.stringify({ event: type, ...(event.id !== undefined && { cursor: event.id }), data }))
        if (type === 'enter' || type === 'change') console.log(`${type}\t${data.id}\t${JSON.stringify(data.value)}`)
        else if (type === 'leave') console.log(`leave\t${data.id}${data.deleted ? '\tdeleted' : ''}`)
        else if (type === 'ready') console.log(`ready\t${data.count} matching\tcursor ${data.cursor}${data.plan ? `\tplan ${data.plan.type}${data.plan.index ? ` ${data.plan.index}` : ''}` : ''}`)
        else if (type === 'reset') console.log('reset')
      },
      ac.signal,
      { body },
    )
  } catch (error) {
    if (ac.signal.aborted) return
    throw error
  }
  if (ac.signal.aborted) return
  throw ended ?? new DaemonError('SHUTTING_DOWN', 'the daemon ended the live query (it is stopping?): run the command again')
}

function common(cmd: Command): Command {
  return cmd.option('--data-dir <dir>', 'data directory of the node to talk to', process.env.MESHSYNC_DATA_DIR).option('--json', 'machine-readable output')
}

function client(opts: Common): SocketClient {
  return new SocketClient(dataDirLayout(opts.dataDir ?? defaultDataDir()).socket)
}

function describe(view: IndexView): string {
  return (view.fields ?? []).map((f) => (f.dir === 'desc' ? `${f.path}:desc` : f.path)).join(', ')
}

function indexPath(ns: string, name: string): string {
  return `/v1/ns/${enc(ns)}/indexes/${enc(name)}`
}


function positive(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new DaemonError('INVALID_ARGUMENT', `not a positive integer: ${value}`)
  return n
}
