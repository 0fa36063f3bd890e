import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { BrowserContext } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHROMIUM, haveChromium, launchChromium, pageErrors as collectPageErrors, type HeadlessChromium } from '../helpers/chromium.ts'
import { ok, put, waitPeerSynced } from '../helpers/cluster.ts'
import { repoRoot, startDaemon, stopAllDaemons } from '../helpers/daemon-process.ts'
import { removeTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

const SCREENSHOT = join(repoRoot, 'test-artifacts', 'dashboard.png')

if (!haveChromium) console.warn(`dashboard e2e skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, as .ci/run does)`)

let chromium: HeadlessChromium | undefined

beforeAll(async () => {
  if (haveChromium) chromium = await launchChromium()
})

afterAll(async () => {
  await chromium?.close()
  await stopAllDaemons()
  await removeTempDirs()
})

describe.skipIf(!haveChromium)(`dashboard in headless Chromium (needs ${CHROMIUM})`, () => {
  it('shows the node and its peer, follows writes live, and resolves a conflict with its button', { timeout: 120_000 }, async () => {
    // Two nodes of one cluster, not yet connected: the same field written on each is a conflict.
    const a = await startDaemon()
    const b = await startDaemon({ args: ['--cluster-key', join(a.dataDir, 'cluster.key')] })
    await put(a, 'shop', 'apple', { price: 3, color: 'red' })
    await put(b, 'shop', 'apple', { price: 5, color: 'red' })

    const browser = chromium?.context as BrowserContext
    const page = await browser.newPage()
    const pageErrors = collectPageErrors(page)

    // Sign in once with the token; the daemon swaps it for a cookie and drops it from the URL.
    const response = await page.goto(`${a.info.api.url}/?token=${encodeURIComponent(a.token)}`)
    expect(response?.status()).toBe(200)
    expect(page.url()).toBe(`${a.info.api.url}/`)
    const cookies = await browser.cookies()
    expect(cookies).toHaveLength(1)
    expect(cookies[0]).toMatchObject({ name: `meshsync_${a.info.nodeId}`, httpOnly: true, sameSite: 'Strict' })

    await expect.poll(() => page.getByTestId('node-id').textContent(), { timeout: 10_000 }).toBe(a.info.nodeId)
    await page.getByTestId('no-peers').waitFor()
    await expect.poll(() => page.locator('#live').getAttribute('data-state')).toBe('live')

    // Connect them: the peer appears, connected.
    ok(await b.sock('POST', '/v1/peers', { multiaddr: a.info.listen[0] }), 'dial a from b')
    await waitPeerSynced(a, b.info.peerId)
    const peerRow = page.locator(`[data-testid="peer-row"][data-peer-id="${b.info.peerId}"]`)
    await peerRow.waitFor({ timeout: 15_000 })
    await expect.poll(() => peerRow.getAttribute('data-connected'), { timeout: 15_000 }).toBe('true')
    // The page polls every second: the poll that saw the connection may predate the first sync.
    await expect.poll(() => peerRow.textContent(), { timeout: 15_000 }).toContain(b.info.nodeId)

    // A write on b shows up on a's dashboard: in the live feed and in the namespace count.
    await put(b, 'shop', 'pear', { price: 2 })
    await page.locator('[data-testid="feed-item"][data-id="pear"]').waitFor({ timeout: 15_000 })
    await expect.poll(() => page.locator('[data-testid="ns-row"][data-ns="shop"] [data-testid="ns-count"]').textContent(), { timeout: 10_000 }).toBe('2')
    await expect.poll(() => page.getByTestId('entity-total').textContent()).toBe('2')

    // The conflict is listed with both values; a screenshot of the full dashboard.
    const conflict = page.locator('[data-testid="conflict"][data-entity="shop/apple"]')
    await conflict.waitFor({ timeout: 15_000 })
    const text = (await conflict.textContent()) ?? ''
    expect(text).toContain('price')
    expect(text).toContain('3')
    expect(text).toContain('5')
    await page.locator('#rate svg polyline').waitFor({ state: 'attached' }) // the rate chart has points
    await mkdir(join(repoRoot, 'test-artifacts'), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })

    // Resolve through the button: the conflict goes away, on this node and on the peer.
    await conflict.getByTestId('resolve').click()
    await page.getByTestId('no-conflicts').waitFor({ timeout: 15_000 })
    expect(ok(await a.sock('GET', '/v1/conflicts'))).toEqual([])
    await waitFor(async () => (ok(await b.sock<unknown[]>('GET', '/v1/conflicts')).length === 0 ? true : undefined), {
      timeout: 15_000,
      message: 'the resolution to reach b',
    })

    // Backups show when /v1/status reports them; on a build without the field, a stubbed one.
    const status = ok(await a.sock<Record<string, unknown>>('GET', '/v1/status'))
    if (status.backups === undefined) {
      expect(await page.locator('#backups').isHidden()).toBe(true)
      await page.route('**/v1/status', async (route) => {
        const real = await route.fetch()
        const body = (await real.json()) as Record<string, unknown>
        const backups = { target: '/mnt/backups', running: false, lastSuccess: { id: 'b-1', at: new Date().toISOString(), type: 'full', bytes: 4096 }, lastFailure: null, ageMs: 0 }
        await route.fulfill({ response: real, json: { ...body, backups } })
      })
    }
    await page.locator('#backups').waitFor({ state: 'visible', timeout: 10_000 })
    expect(await page.locator('#backups').textContent()).toContain('lastSuccess')
    expect(pageErrors).toEqual([])
    await page.close()
  })

  it('shows a bootstrap address that fails, and why (docs/operations.md, Dial failures)', { timeout: 120_000 }, async () => {
    const other = await startDaemon()
    const seed = (other.info.listen[0] as string).replace(/\/p2p\/.*$/, '')
    const lonely = await startDaemon({ args: ['--bootstrap', seed] })
    const page = await (chromium?.context as BrowserContext).newPage()
    const pageErrors = collectPageErrors(page)
    await page.goto(`${lonely.info.api.url}/?token=${encodeURIComponent(lonely.token)}`)
    const item = page.locator(`[data-testid="failing-dial"][data-addr="${seed}"]`)
    await item.waitFor({ timeout: 30_000 })
    expect(await item.getAttribute('data-error')).toBe('PEER_KEY_MISMATCH')
    expect(await item.textContent()).toContain('cluster key mismatch')
    // The address's own row in the peers table, marked with the cause.
    expect(await page.locator('[data-testid="peer-row"]').first().textContent()).toContain('PEER_KEY_MISMATCH')
    expect(pageErrors).toEqual([])
    await page.close()
  })
})
