// Helpers for the browser tests: Debian's Chromium with the flags from BROWSER-TESTS.md, one browser
// context per person (its own storage, so its own device id), screenshots, and waits on conditions.

import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const API_URL = process.env.BROWSER_API_URL;
export const CLIENT_URL = process.env.BROWSER_CLIENT_URL;
if (!API_URL || !CLIENT_URL) {
  throw new Error('BROWSER_API_URL and BROWSER_CLIENT_URL are not set: run tests/browser/run.sh, which starts the server');
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHOTS = join(ROOT, 'artifacts', 'screenshots');
mkdirSync(SHOTS, { recursive: true });

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
const NARROWEST = 360;

// Exactly the flags BROWSER-TESTS.md found to work on these machines.
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

export function launch() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS, headless: true });
}

/**
 * A person with their own browser context. `denyMic` makes the browser refuse the microphone, as a
 * person clicking "Block" would.
 */
export async function person(browser, name, { denyMic = false, clipboard = false } = {}) {
  const context = await browser.newContext({
    viewport: DESKTOP,
    permissions: clipboard ? ['clipboard-read', 'clipboard-write'] : [],
  });
  // The client's one setting, pointed at the test server's free port.
  await context.route('**/config.js', (route) =>
    route.fulfill({ contentType: 'text/javascript', body: `export const SERVER_URL = ${JSON.stringify(API_URL)};` }),
  );
  // Keep a handle on each websocket the page opens, so a test can drop a connection.
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__sockets.push(this);
      }
    };
  });
  if (denyMic) {
    await context.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
    });
  }
  const p = { name, context, errors: [] };
  p.page = await newPage(p);
  return p;
}

/** Another tab in the same context (same storage, same device id). */
export async function newPage(p) {
  const page = await p.context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => p.errors.push(`${p.name}: ${e.message}`));
  page.on('console', (m) => {
    // A refused websocket is logged by the browser itself while offline; anything else is a bug.
    if (m.type() === 'error' && !/WebSocket connection|ERR_INTERNET_DISCONNECTED|Failed to load resource/.test(m.text())) {
      p.errors.push(`${p.name}: console: ${m.text()}`);
    }
  });
  return page;
}

/**
 * Saves the page at desktop and phone widths (`NAME-desktop.png`, `NAME-phone.png`,
 * `NAME-phone-full.png`), and checks that at the narrowest phone width nothing makes the page scroll
 * sideways.
 */
export async function screenshots(page, name) {
  const before = page.viewportSize();
  // What a person sees in the window (a full-page capture would draw the sticky controls bar in
  // the middle of the page); on a phone also the whole page scrolled through.
  await page.setViewportSize(DESKTOP);
  await page.screenshot({ path: join(SHOTS, `${name}-desktop.png`) });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: join(SHOTS, `${name}-phone.png`) });
  await page.screenshot({ path: join(SHOTS, `${name}-phone-full.png`), fullPage: true });
  await page.setViewportSize({ width: NARROWEST, height: PHONE.height });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.setViewportSize(before);
  if (overflow > 0) throw new Error(`${name}: at ${NARROWEST} px the page is ${overflow} px too wide`);
}

/** Waits until `fn(arg)` in the page returns a truthy value; fails with `what` and the last value. */
export async function until(page, what, fn, arg, timeout = 10_000) {
  try {
    await page.waitForFunction(fn, arg, { timeout });
  } catch (e) {
    const last = await page.evaluate(fn, arg).catch(() => 'page gone');
    throw new Error(`timed out waiting for ${what} (last value: ${JSON.stringify(last)})`, { cause: e });
  }
}

/** Waits for visible text inside `selector`. */
export async function seeText(page, selector, text, timeout) {
  await page.locator(selector, { hasText: text }).first().waitFor({ state: 'visible', timeout });
}

/** The names in the speaking queue, as the page shows them (without "(you)"). */
export function queueNames(page) {
  return page.$$eval('.queue .queue-name', (els) => els.map((e) => e.firstChild.textContent));
}

/** Waits until a page's queue shows exactly these names, in this order. */
export function expectQueue(page, names) {
  return until(
    page,
    `queue ${JSON.stringify(names)}`,
    (want) => {
      const got = [...document.querySelectorAll('.queue .queue-name')].map((e) => e.firstChild.textContent);
      return JSON.stringify(got) === JSON.stringify(want) ? true : false;
    },
    names,
  );
}

/** The roster row of the person called `name`. */
export function row(page, name) {
  return page.locator('.person', { has: page.locator('.person-name', { hasText: new RegExp(`^${name}( \\(you\\))?$`) }) });
}

/** Opens a person's actions in the facilitator's roster and clicks one. */
export async function personAction(page, name, action) {
  const r = row(page, name);
  const details = r.locator('details.person-actions');
  if (!(await details.evaluate((d) => d.open))) await details.locator('summary').click();
  await r.locator('.menu').getByRole('button', { name: action, exact: true }).click();
}

/** Whether the announcer (the screen readers' live region) has said `text`. */
export function announced(page, text) {
  return until(page, `announcement "${text}"`, (t) => document.getElementById('announcer')?.textContent.includes(t), text);
}
