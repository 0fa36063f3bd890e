import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

/** Debian's `chromium` (installed by .ci/run); MESHSYNC_CHROMIUM names another binary. */
export const CHROMIUM = process.env.MESHSYNC_CHROMIUM ?? '/usr/bin/chromium'
export const haveChromium = existsSync(CHROMIUM)

/** A headless Chromium with a fresh profile; `close()` ends it and removes the profile. */
export interface HeadlessChromium {
  readonly context: BrowserContext
  close(): Promise<void>
}

export async function launchChromium(): Promise<HeadlessChromium> {
  const profile = await mkdtemp(join(tmpdir(), 'msync-chromium-'))
  // A fresh profile per run (Playwright takes --user-data-dir as the persistent context's dir).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  return {
    context,
    async close() {
      await context.close()
      await rm(profile, { recursive: true, force: true })
    },
  }
}

/** Collects the page's uncaught errors and console errors (a test expects none). */
export function pageErrors(page: Page): string[] {
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text())
  })
  return errors
}
