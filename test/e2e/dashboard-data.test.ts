import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Locator, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHROMIUM, haveChromium, launchChromium, pageErrors, type HeadlessChromium } from '../helpers/chromium.ts'
import { ok, put, waitPeerSynced, type Entity } from '../helpers/cluster.ts'
import { repoRoot, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon-process.ts'
import { makeTempDir, removeTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/** The dashboard's Data tab (docs/operations.md) in headless Chromium, checked against the REST API. */

const SCREENSHOT = join(repoRoot, 'test-artifacts', 'dashboard-data.png')
const ITEMS = 25
const MAX_SCAN = 20
/** A value that would run script or make elements if it were inserted as HTML. */
const HOSTILE = '<img src=x onerror="document.title=1"><b>bold</b>'
const itemId = (i: number): string => `item-${String(i).padStart(2, '0')}`

let chromium: HeadlessChromium | undefined

beforeAll(async () => {
  if (haveChromium) chromium = await launchChromium()
})

afterAll(async () => {
  await chromium?.close()
  await stopAllDaemons()
  await removeTempDirs()
})

/** Ids of the result rows shown now. */
async function rowIds(page: Page): Promise<string[]> {
  return page.locator('[data-testid="result-row"]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id') ?? ''))
}

/** Waits until the results show page `n` (1-based) with these rows. */
async function expectRows(page: Page, n: number, ids: readonly string[]): Promise<void> {
  await expect.poll(async () => ({ info: await page.getByTestId('page-info').textContent(), ids: await rowIds(page) }), { timeout: 10_000 }).toEqual({
    info: expect.stringContaining(`page ${n} `),
    ids,
  })
}

function row(page: Page, id: string): Locator {
  return page.locator(`[data-testid="result-row"][data-id="${id}"]`)
}

function field(page: Page, name: string): Locator {
  return page.locator(`#entity [data-testid="entity-field"][data-field="${name}"]`)
}

async function entity(d: DaemonHandle, ns: string, id: string): Promise<Entity & { conflicts?: unknown[] }> {
  return ok(await d.sock<Entity & { conflicts?: unknown[] }>('GET', `/v1/ns/${ns}/entities/${id}`))
}

describe.skipIf(!haveChromium)(`dashboard data browser in headless Chromium (needs ${CHROMIUM})`, () => {
  it('queries a namespace, pages with the cursor, filters by click, opens an entity and edits a field', { timeout: 180_000 }, async () => {
    // Node a: an index on `items` (kind, n), scans limited to 20 entities, `ledger` strict.
    const dataDir = await makeTempDir('meshsync-e2e-')
    const config = { query: { maxScan: MAX_SCAN }, namespaces: { items: { indexes: { byKind: ['kind', 'n'] } }, ledger: { conflicts: 'strict' } } }
    await writeFile(join(dataDir, 'config.json'), JSON.stringify(config))
    const a = await startDaemon({ dataDir })
    const b = await startDaemon({ args: ['--cluster-key', join(a.dataDir, 'cluster.key')] })

    const ops = Array.from({ length: ITEMS }, (_, i) => ({ op: 'put', ns: 'items', id: itemId(i), value: { n: i, kind: i % 2 === 0 ? 'even' : 'odd', label: `${HOSTILE}${i}` } }))
    ok(await a.sock('POST', '/v1/batch', { ops }), 'seed items')
    ok(await a.sock('POST', '/v1/ns/items/entities/item-04/text/notes', { ops: [[0, 0, `first line\n${HOSTILE}`]] }), 'a text')
    // The same field written on both before they meet: a conflict on a, in its strict namespace.
    await put(a, 'ledger', 'acct', { balance: 1, owner: 'ann' })
    await put(b, 'ledger', 'acct', { balance: 2, owner: 'ann' })
    ok(await b.sock('POST', '/v1/peers', { multiaddr: a.info.listen[0] }), 'dial a from b')
    await waitPeerSynced(a, b.info.peerId)
    await waitFor(async () => ((await entity(a, 'ledger', 'acct')).conflicts?.length ? true : undefined), { timeout: 15_000, message: 'the conflict on a' })
    await waitFor(
      async () => (ok(await a.sock<{ indexes: { name: string; state: string }[] }>('GET', '/v1/status')).indexes.some((x) => x.name === 'byKind' && x.state === 'ready') ? true : undefined),
      { message: 'index byKind ready' },
    )

    const page = await (chromium as HeadlessChromium).context.newPage()
    const errors = pageErrors(page)
    expect((await page.goto(`${a.info.api.url}/?token=${encodeURIComponent(a.token)}`))?.status()).toBe(200)
    await page.locator('[data-tab="data"]').click()
    expect(page.url()).toMatch(/#data$/)
    await expect.poll(() => page.locator('#overview').isHidden()).toBe(true)

    // The namespace picker holds the node's namespaces; the first is listed in id order.
    await expect.poll(() => page.locator('#data-ns option').allTextContents(), { timeout: 10_000 }).toEqual(['items', 'ledger'])
    await expectRows(page, 1, Array.from({ length: 20 }, (_, i) => itemId(i)))
    await page.getByTestId('page-next').click()
    await expectRows(page, 2, [20, 21, 22, 23, 24].map(itemId))
    expect(await page.getByTestId('page-next').isDisabled()).toBe(true)
    // Values are text: the hostile label shows as written and makes no element.
    expect(await row(page, 'item-20').locator('[data-testid="cell"][data-field="label"]').textContent()).toContain('<img src=x')
    expect(await page.locator('#data img, #data b').count()).toBe(0)

    // A query (index-served), paged by its cursor: 13 even items, highest n first, 5 a page.
    await page.locator('#data-where').fill('{"kind": "even"}')
    await page.locator('#data-sort').fill('[["n", "desc"]]')
    await page.locator('#data-limit').fill('5')
    await page.getByTestId('run-query').click()
    const evens = Array.from({ length: 13 }, (_, i) => itemId(24 - 2 * i))
    const pages = [evens.slice(0, 5), evens.slice(5, 10), evens.slice(10)]
    await expectRows(page, 1, pages[0] as string[])
    for (const [i, ids] of pages.entries()) {
      if (i > 0) {
        await page.getByTestId('page-next').click()
        await expectRows(page, i + 1, ids)
      }
      expect(await page.getByTestId('page-next').isEnabled()).toBe(i < pages.length - 1)
    }
    expect(await page.getByTestId('page-info').textContent()).not.toContain('scan')
    await page.getByTestId('page-prev').click()
    await expectRows(page, 2, evens.slice(5, 10))

    // Click filters: a value adds a condition, a chip's × removes it.
    await page.locator('#data-clear').click()
    await expectRows(page, 1, [0, 1, 2, 3, 4].map(itemId))
    await row(page, 'item-01').locator('[data-testid="cell"][data-field="kind"]').click()
    await expect.poll(() => page.locator('#data-where').inputValue()).toBe('{"kind":"odd"}')
    await expectRows(page, 1, [1, 3, 5, 7, 9].map(itemId))
    await row(page, 'item-07').locator('[data-testid="cell"][data-field="n"]').click()
    await expectRows(page, 1, ['item-07'])
    expect(await page.getByTestId('filter-chip').evaluateAll((chips) => chips.map((c) => c.getAttribute('data-field')))).toEqual(['kind', 'n'])
    // Without `kind` no index serves {"n": 7}: a scan of 25 > maxScan, QUERY_NEEDS_INDEX shows.
    await page.locator('[data-testid="filter-chip"][data-field="kind"] button').click()
    const queryError = page.getByTestId('query-error')
    await expect.poll(() => queryError.textContent(), { timeout: 10_000 }).toContain('QUERY_NEEDS_INDEX')
    expect(await rowIds(page)).toEqual([])
    // An invalid query shows the API's code and message; a where that is not JSON says so.
    await page.locator('#data-where').fill('{"n": {"$foo": 1}}')
    await page.getByTestId('run-query').click()
    await expect.poll(() => queryError.textContent(), { timeout: 10_000 }).toMatch(/^INVALID_QUERY: where\.n\.\$foo/)
    await page.locator('#data-where').fill('{"n": ')
    await page.getByTestId('run-query').click()
    await expect.poll(() => queryError.textContent()).toContain('where is not valid JSON')
    await page.locator('#data-clear').click()
    await expect.poll(() => queryError.isHidden()).toBe(true)
    await expectRows(page, 1, [0, 1, 2, 3, 4].map(itemId))

    // An entity: its value, version vector and texts, as the REST API has them.
    const before = await entity(a, 'items', 'item-04')
    await row(page, 'item-04').getByTestId('open-entity').click()
    await expect.poll(() => page.locator('#entity-title').textContent()).toBe('items / item-04')
    await expect.poll(() => field(page, 'n').locator('pre').textContent(), { timeout: 10_000 }).toBe('4')
    expect(await field(page, 'label').locator('pre').textContent()).toBe(JSON.stringify(`${HOSTILE}4`))
    const vv = page.locator(`#entity [data-testid="vv-row"][data-origin="${a.info.nodeId}"]`)
    expect(await vv.textContent()).toBe(`${a.info.nodeId}this node${before.version[a.info.nodeId]}`)
    expect(await page.locator('#entity [data-testid="vv-row"]').count()).toBe(Object.keys(before.version).length)
    expect(await page.locator('#entity [data-testid="text"][data-name="notes"] pre').textContent()).toBe(`first line\n${HOSTILE}`)
    expect(await page.locator('#data img, #data b').count()).toBe(0)
    expect(await page.locator('#entity .body').textContent()).not.toContain('null') // nothing absent printed as "null"
    await mkdir(join(repoRoot, 'test-artifacts'), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })

    // Edit one field: the PATCH lands (the other fields stay), the view and the results follow.
    await field(page, 'n').getByTestId('edit-field').click()
    await page.getByTestId('edit-value').fill('40')
    await page.getByTestId('save-field').click()
    await expect.poll(() => field(page, 'n').locator('pre').textContent(), { timeout: 10_000 }).toBe('40')
    const after = await entity(a, 'items', 'item-04')
    expect(after.value).toEqual({ ...before.value, n: 40 })
    expect(after.version[a.info.nodeId]).toBeGreaterThan(before.version[a.info.nodeId] as number)
    await expect.poll(() => row(page, 'item-04').locator('[data-testid="cell"][data-field="n"]').textContent(), { timeout: 10_000 }).toBe('40')

    // A write elsewhere after the entity was shown: Save shows it instead of overwriting it, and
    // only a second Save writes.
    await field(page, 'kind').getByTestId('edit-field').click()
    await page.getByTestId('edit-value').fill('"mine"')
    ok(await a.sock('PATCH', '/v1/ns/items/entities/item-04', { kind: 'theirs' }))
    await page.getByTestId('save-field').click()
    await expect.poll(() => page.getByTestId('edit-error').textContent(), { timeout: 10_000 }).toContain('changed since it was opened')
    expect(await page.getByTestId('edit-current').textContent()).toContain('"theirs"')
    expect((await entity(a, 'items', 'item-04')).value.kind).toBe('theirs')
    await page.getByTestId('save-field').click()
    await expect.poll(() => field(page, 'kind').locator('pre').textContent(), { timeout: 10_000 }).toBe('"mine"')
    expect((await entity(a, 'items', 'item-04')).value).toEqual({ ...before.value, n: 40, kind: 'mine' })

    // The strict namespace: the entity shows its conflict, and an edit shows the API's refusal.
    await page.locator('#data-ns').selectOption('ledger')
    await expectRows(page, 1, ['acct'])
    expect(await row(page, 'acct').textContent()).toContain('conflict')
    await row(page, 'acct').getByTestId('open-entity').click()
    const conflict = page.locator('#entity [data-testid="entity-conflict"][data-field="balance"]')
    await conflict.waitFor({ timeout: 10_000 })
    expect(await conflict.textContent()).toMatch(/1.*2|2.*1/)
    const ledgerBefore = await entity(a, 'ledger', 'acct')
    await field(page, 'balance').getByTestId('edit-field').click()
    await page.getByTestId('edit-value').fill('3')
    await page.getByTestId('save-field').click()
    await expect.poll(() => page.getByTestId('edit-error').textContent(), { timeout: 10_000 }).toMatch(/^UNRESOLVED_CONFLICT: /)
    expect(await entity(a, 'ledger', 'acct')).toEqual(ledgerBefore)

    // No script error; the only console errors are the browser's notes of the 4xx answers above.
    expect(errors.filter((e) => !/status of 4\d\d/.test(e))).toEqual([])
    await page.close()
  })
})
