// The browsers the console test runs in, each behind the same small page interface so that
// tests/console.mjs runs one step list in all of them:
//   * chromium: Debian's chromium driven by playwright-core (a fresh --user-data-dir);
//   * firefox: Debian's firefox-esr driven by puppeteer-core over WebDriver BiDi (stock Firefox
//     has no Playwright protocol; BiDi is what it speaks).
// Selectors are plain CSS (no driver-specific text or role engines); the step list finds
// elements by text through `evaluate`. Timeouts are in milliseconds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Default executables, overridable by $CHROMIUM / $FIREFOX. */
export const EXECUTABLES = {
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  firefox: process.env.FIREFOX || '/usr/bin/firefox-esr',
};

/**
 * Opens `browser` ("chromium" or "firefox") headless at 1280×800 with a light colour scheme
 * and returns the page interface:
 *   goto(url) reload() url() setViewport(w, h) screenshot(path)
 *   evaluate(fn, arg) waitForFunction(fn, arg, timeout) → the truthy value fn returned
 *   waitFor(selector, {visible, timeout}) click(selector) fill(selector, text)
 *   type(text) press(key)      (keyboard, into the focused element)
 *   on('consoleError' | 'pageError' | 'request', callback(text))   close()
 */
export async function openBrowser(browser, { timeout = 15000 } = {}) {
  if (browser === 'chromium') return openChromium(EXECUTABLES.chromium, timeout);
  if (browser === 'firefox') return openFirefox(EXECUTABLES.firefox, timeout);
  throw new Error(`unknown browser ${JSON.stringify(browser)} (chromium or firefox)`);
}

async function openChromium(executablePath, timeout) {
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'sextant-ui-chromium-'));
  // A persistent context is how playwright takes a fresh --user-data-dir.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(timeout);
  return {
    name: 'chromium',
    version: context.browser() ? context.browser().version() : 'chromium',
    goto: async (url) => void (await page.goto(url)),
    reload: async () => void (await page.reload()),
    url: () => page.url(),
    setViewport: (width, height) => page.setViewportSize({ width, height }),
    screenshot: (path) => page.screenshot({ path, fullPage: true }),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitForFunction: async (fn, arg, t = timeout) => (await page.waitForFunction(fn, arg, { timeout: t })).jsonValue(),
    waitFor: async (selector, { visible = false, timeout: t = timeout } = {}) =>
      void (await page.waitForSelector(selector, { state: visible ? 'visible' : 'attached', timeout: t })),
    click: (selector) => page.click(selector),
    fill: (selector, text) => page.fill(selector, text),
    type: (text) => page.keyboard.type(text),
    press: (key) => page.keyboard.press(key),
    on(event, cb) {
      if (event === 'consoleError') page.on('console', (m) => m.type() === 'error' && cb(m.text()));
      else if (event === 'pageError') page.on('pageerror', (e) => cb(e.message));
      else if (event === 'request') page.on('request', (r) => cb(r.url()));
    },
    close: async () => {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

async function openFirefox(executablePath, timeout) {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath,
    headless: true,
    // A first start builds the profile; give a busy machine time (playwright waits 3 min).
    timeout: 120000,
    // puppeteer-core makes and removes a fresh profile; these keep the page light-themed (as
    // chromium's colorScheme) and Firefox itself quiet.
    extraPrefsFirefox: {
      'layout.css.prefers-color-scheme.content-override': 1,
      'browser.shell.checkDefaultBrowser': false,
      'app.update.enabled': false,
      'datareporting.policy.dataSubmissionEnabled': false,
    },
  });
  const page = (await browser.pages())[0] || (await browser.newPage());
  page.setDefaultTimeout(timeout);
  await page.setViewport({ width: 1280, height: 800 });
  return {
    name: 'firefox',
    version: await browser.version(),
    goto: async (url) => void (await page.goto(url)),
    reload: async () => void (await page.reload()),
    url: () => page.url(),
    setViewport: (width, height) => page.setViewport({ width, height }),
    screenshot: (path) => page.screenshot({ path, fullPage: true }),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitForFunction: async (fn, arg, t = timeout) => (await page.waitForFunction(fn, { timeout: t, polling: 100 }, arg)).jsonValue(),
    waitFor: async (selector, { visible = false, timeout: t = timeout } = {}) =>
      void (await page.waitForSelector(selector, { visible, timeout: t })),
    // Locators wait until the element is visible, stable and enabled, as playwright's do.
    click: (selector) => page.locator(selector).click(),
    fill: (selector, text) => page.locator(selector).fill(text),
    type: (text) => page.keyboard.type(text),
    press: (key) => page.keyboard.press(key),
    on(event, cb) {
      if (event === 'consoleError') page.on('console', (m) => m.type() === 'error' && cb(m.text()));
      else if (event === 'pageError') page.on('pageerror', (e) => cb(e.message));
      else if (event === 'request') page.on('request', (r) => cb(r.url()));
    },
    close: () => browser.close(),
  };
}
