// Helpers for the browser tests: Debian's Chromium with the flags from BROWSER-TESTS.md, one browser
// context per person (its own storage, so its own device id), screenshots, and waits on conditions.

import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
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

/** Creates an ad-hoc room through the HTTP API (on `api`, the test server's by default); its JSON. */
export async function createRoom(title, settings = {}, api = API_URL) {
  const res = await fetch(`${api}/api/rooms`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ title, settings }),
  });
  if (res.status !== 201) throw new Error(`creating a room: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * Starts Chromium. `options` are Playwright's launch options: `args` are flags beyond those (e.g.
 * `--autoplay-policy=user-gesture-required`); the netns tests (tests/netns) run a wrapper as
 * `executablePath` that starts it inside a namespace.
 */
export function launch({ args = [], ...options } = {}) {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, ...options, args: [...FLAGS, ...args] });
}

/**
 * A person with their own browser context. `denyMic` makes the browser refuse the microphone, as a
 * person clicking "Block" would; `holdable` lets the page's websockets be sent to a `holdServer`.
 */
export async function person(
  browser,
  name,
  { denyMic = false, clipboard = false, viewport = DESKTOP, config = {}, holdable = false, server = null, locale, timezoneId } = {},
) {
  const context = await browser.newContext({
    viewport,
    // Where and when the person is (e.g. 'en-GB', 'America/New_York'): times show in their own.
    ...(locale ? { locale } : {}),
    ...(timezoneId ? { timezoneId } : {}),
    // `holdServer` listens on a port the page's content security policy does not allow.
    bypassCSP: holdable,
    permissions: clipboard ? ['clipboard-read', 'clipboard-write'] : [],
  });
  // The client's settings: the server, pointed at the test server's free port, and any others the
  // test gives (`config`, e.g. `{ SUPPORT_TEXT: '…' }`).
  // `server`: a test's own server (`ownServer`) instead of the one run.sh started.
  const settings = { SERVER_URL: server?.apiUrl ?? API_URL, ...config };
  const body = Object.entries(settings)
    .map(([k, v]) => `export const ${k} = ${JSON.stringify(v)};`)
    .join('\n');
  await context.route('**/config.js', (route) => route.fulfill({ contentType: 'text/javascript', body }));
  // Keep a handle on each websocket the page opens, so a test can drop a connection (and, while
  // `__refuseSockets` is set, make new ones fail as they do offline); and ask the client for its test
  // hook (`window.__circle`: the voice connection's statistics, the room model).
  await context.addInitScript(() => {
    window.__CIRCLE_TEST__ = true;
    const Native = window.WebSocket;
    window.__sockets = [];
    window.__refuseSockets = false;
    window.__holdSockets = null; // a ws:// address whose server accepts and never answers
    window.WebSocket = class extends Native {
      constructor(url, ...rest) {
        // Port 1 on loopback: the page's content security policy blocks it at once (an `error` event
        // and no `close`, a harder case than a refused connection); refused at once with `holdable`.
        super(window.__refuseSockets ? 'ws://127.0.0.1:1/' : (window.__holdSockets ?? url), ...rest);
        const index = window.__sockets.push(this) - 1;
        this.addEventListener('open', () => (this.opened = true));
        // Whether the page had opened its next socket by the time its timers of no delay ran after
        // this one closed: that is, without waiting out a backoff.
        this.addEventListener('close', () => {
          setTimeout(() => (this.nextOpenedAtOnce = window.__sockets.length > index + 1), 0);
        });
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
  page.setDefaultTimeout(20_000); // room to spare on a busy machine
  page.on('pageerror', (e) => p.errors.push(`${p.name}: ${e.message}`));
  page.on('console', (m) => {
    // A refused websocket is logged by the browser itself while offline; anything else is a bug
    // (`__refuseSockets` makes the page's content security policy block its sockets, which it reports.)
    if (m.type() === 'error' && !/WebSocket connection|ERR_INTERNET_DISCONNECTED|Failed to load resource|Connecting to 'ws:\/\/127\.0\.0\.1:1\/'/.test(m.text())) {
      p.errors.push(`${p.name}: console: ${m.text()}`);
    }
  });
  return page;
}

// Every screen is checked (axe) and saved in each language and theme (web-client/locales/*.js).
const LANGUAGES = ['en', 'es'];
const THEMES = ['light', 'dark'];

/**
 * Runs `fn(lang, theme)` with the page in each language and colour scheme, starting with the ones it
 * is in (so the first call sees the page exactly as the test left it), and puts both back after.
 * The language is switched through the page's own picker (`#language`), which draws the screen again
 * in place; a page without one, or with a modal dialog open (the page behind it is inert), is
 * checked in its own language only, in both themes. The theme is Chromium's emulated
 * `prefers-color-scheme`.
 */
export async function inEachLook(page, fn) {
  const start = await page.evaluate(() => ({
    // The picker keeps a choice on the device: put back what was there (often nothing).
    stored: localStorage.getItem('circle.language'),
    lang: document.documentElement.lang || 'en',
    theme: matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light',
    picker: !!document.getElementById('language') && !document.querySelector('dialog[open]'),
  }));
  const first = (list, x) => [x, ...list.filter((y) => y !== x)];
  const langs = start.picker ? first(LANGUAGES, start.lang) : [start.lang];
  let lang = start.lang;
  try {
    for (const want of langs) {
      if (want !== lang) {
        await chooseLanguage(page, want);
        lang = want;
      }
      for (const theme of first(THEMES, start.theme)) {
        await page.emulateMedia({ colorScheme: theme });
        await fn(lang, theme);
      }
    }
  } finally {
    await page.emulateMedia({ colorScheme: start.theme });
    if (lang !== start.lang) {
      await chooseLanguage(page, start.lang);
      await page.evaluate((stored) => (stored === null ? localStorage.removeItem('circle.language') : localStorage.setItem('circle.language', stored)), start.stored);
    }
  }
}

/**
 * Chooses `lang` in the page's language picker, as a person would, and waits for the page to follow.
 * `focus`: the keyboard's way, from the picker (else the focus stays wherever the test left it).
 */
export async function chooseLanguage(page, lang, { focus = false } = {}) {
  const picker = page.locator('#language');
  if (focus) await picker.focus();
  await picker.selectOption(lang);
  await until(page, `the page in "${lang}"`, (l) => document.documentElement.lang === l && document.getElementById('language')?.value === l, lang);
}

/**
 * Saves the page at desktop and phone widths in each language and theme (`NAME-LANG-THEME-desktop.png`,
 * `NAME-LANG-THEME-phone.png`, and `NAME-LANG-THEME-phone-full.png` as the test left it), checks that
 * at the narrowest phone width nothing makes the page scroll sideways (in each language: some are
 * longer), and runs axe-core on each (any violation fails).
 */
export async function screenshots(page, name) {
  const before = page.viewportSize();
  let firstLook = true;
  try {
    await inEachLook(page, async (lang, theme) => {
      const look = `${name}-${lang}-${theme}`;
      await runAxe(page, `${name} (${lang}, ${theme})`);
      // What a person sees in the window (a full-page capture would draw the sticky controls bar in
      // the middle of the page); on a phone also the whole page scrolled through.
      await page.setViewportSize(DESKTOP);
      await page.screenshot({ path: join(SHOTS, `${look}-desktop.png`) });
      await page.setViewportSize(PHONE);
      await page.screenshot({ path: join(SHOTS, `${look}-phone.png`) });
      if (firstLook) await page.screenshot({ path: join(SHOTS, `${look}-phone-full.png`), fullPage: true });
      firstLook = false;
      if (theme === 'light') {
        await page.setViewportSize({ width: NARROWEST, height: PHONE.height });
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        if (overflow > 0) throw new Error(`${name} (${lang}): at ${NARROWEST} px the page is ${overflow} px too wide`);
      }
      await page.setViewportSize(before);
    });
  } finally {
    await page.setViewportSize(before);
  }
}

/** Waits until `fn(arg)` in the page returns a truthy value; fails with `what` and the last value. */
export async function until(page, what, fn, arg, timeout = 20_000) {
  try {
    await page.waitForFunction(fn, arg, { timeout });
  } catch (e) {
    const last = await page.evaluate(fn, arg).catch(() => 'page gone');
    throw new Error(`timed out waiting for ${what} (last value: ${JSON.stringify(last)})`, { cause: e });
  }
}

/**
 * Drops a page's connection to the server and keeps it from reconnecting until `restoreConnection`.
 * (Chromium's offline emulation is not used for this: a websocket closed while "offline" can hang in
 * CLOSING for many seconds, so the page would not even notice the drop.)
 */
export function dropConnection(page) {
  return page.evaluate(() => {
    window.__refuseSockets = true;
    window.__sockets.at(-1).close();
  });
}

/** Lets the page connect again, and tells it the network is back (the browser's `online` event). */
export function restoreConnection(page) {
  return page.evaluate(() => {
    window.__refuseSockets = false;
    window.__holdSockets = null;
    window.dispatchEvent(new Event('online'));
  });
}

/**
 * A loopback server that accepts connections and never answers: a page's websocket to it stays
 * "connecting" (a reconnect attempt in flight) until `failAll()` drops them. `accepted` counts them.
 */
export async function holdServer() {
  const held = new Set();
  const server = createServer((socket) => {
    held.add(socket);
    socket.on('close', () => held.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const h = {
    url: `ws://127.0.0.1:${server.address().port}/`,
    accepted: 0,
    held,
    failAll() {
      for (const s of held) s.destroy();
    },
    close() {
      h.failAll();
      return new Promise((resolve) => server.close(resolve));
    },
  };
  server.on('connection', () => (h.accepted += 1));
  return h;
}

// ---- a test's own server -------------------------------------------------------------------------

const SERVER_BIN = join(ROOT, 'target', 'debug', 'circle');

/** `n` free loopback ports, chosen by the kernel. */
async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i += 1) {
    const s = createServer();
    await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
    servers.push(s);
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/**
 * A Circle server of the test's own, for tests that stop and start it: its own loopback ports (the
 * API, and the web client, which it serves too, so the page's content security policy lets it
 * talk to this server) and its own data directory, which outlive a restart. `env` adds settings
 * (`CIRCLE_…`). Its output goes to artifacts/NAME-server.log. `start()` waits until it answers;
 * `stop(signal)` waits until it has exited; `close()` stops it and removes the data directory.
 */
export async function ownServer(name, env = {}) {
  const [apiPort, clientPort] = await freePorts(2);
  const dataDir = mkdtempSync(join(tmpdir(), 'circle-browser-'));
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const log = createWriteStream(join(ROOT, 'artifacts', `${name}-server.log`));
  const fullEnv = {
    ...process.env,
    CIRCLE_SERVER__LISTEN: `127.0.0.1:${apiPort}`,
    CIRCLE_CLIENT__LISTEN: `127.0.0.1:${clientPort}`,
    CIRCLE_CLIENT__URL: clientUrl,
    CIRCLE_CLIENT__SERVE_DIR: join(ROOT, 'web-client'),
    CIRCLE_CLIENT__ALLOWED_ORIGINS: JSON.stringify([clientUrl]),
    CIRCLE_MEDIA__LISTEN: '127.0.0.1:0',
    CIRCLE_MEDIA__ADVERTISED_IP: '127.0.0.1',
    CIRCLE_LIMITS__ROOMS_PER_CLIENT_BURST: '10000',
    CIRCLE_STORAGE__DATA_DIR: dataDir,
    ...env,
  };
  let child = null;
  let exited = null;
  const s = {
    apiUrl,
    clientUrl,
    dataDir,
    get pid() {
      return child?.pid ?? null;
    },
    async start() {
      child = spawn(SERVER_BIN, [], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.pipe(log, { end: false });
      child.stderr.pipe(log, { end: false });
      let gone = false;
      exited = new Promise((resolve) => child.once('exit', (code, signal) => ((gone = true), resolve({ code, signal }))));
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (gone) throw new Error(`the ${name} server exited while starting; see artifacts/${name}-server.log`);
        const up = await Promise.all([`${apiUrl}/healthz`, `${clientUrl}/`].map((u) => fetch(u).then((r) => r.ok, () => false)));
        if (up.every(Boolean)) return;
        if (Date.now() > deadline) throw new Error(`the ${name} server did not answer within 30 s`);
        await sleep(100);
      }
    },
    /** Sends `signal` (SIGTERM: a graceful stop; SIGKILL: `kill -9`) and waits until it exited. */
    async stop(signal = 'SIGTERM') {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      return exited;
    },
    async close() {
      await s.stop('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
      log.end();
    },
  };
  return s;
}

// ---- accessibility ------------------------------------------------------------------------------

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core on the page as it is now, in each language and theme (`inEachLook`): WCAG 2.x A and
 * AA (colour contrast too), best practices, and the label-in-name check of WCAG 2.5.3; any violation
 * fails with its rule and the elements it found.
 */
export async function axe(page, screen) {
  await inEachLook(page, (lang, theme) => runAxe(page, `${screen} (${lang}, ${theme})`));
}

async function runAxe(page, screen) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE); // past any content security policy
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
      rules: { 'label-content-name-mismatch': { enabled: true } },
    });
    return r.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 4).join(', ')})`);
  });
  if (violations.length) throw new Error(`axe on ${screen}:\n  ${violations.join('\n  ')}`);
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

// ---- voice --------------------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * What `listener` receives from the person called `name`, from its voice connection's `getStats()`
 * (web-client/media.js `stats()`), for the track whose stream id is that person's `stream`:
 * `{ generation, connection, direction, stream, track, packets, energy, level }`. `track` names the
 * track within one voice connection (`generation`): a new connection may reuse a track id.
 */
export function received(listener, name) {
  return listener.page.evaluate(async (name) => {
    const c = window.__circle;
    const p = [...(c.state?.participants.values() ?? [])].find((x) => x.name === name);
    const s = await c.media.stats();
    const r = p?.stream ? s?.streams[p.stream] : undefined;
    return {
      generation: s?.generation ?? null,
      connection: s?.connectionState ?? null,
      direction: s?.direction ?? null,
      stream: p?.stream ?? null,
      track: r?.track ? `${s.generation}/${r.track}` : null,
      packets: r?.packetsReceived ?? 0,
      energy: r?.totalAudioEnergy ?? 0,
      level: r?.audioLevel ?? 0,
    };
  }, name);
}

/** What a person's own voice connection sends: `{ generation, sending, packetsSent, direction }`. */
export function sent(p) {
  return p.page.evaluate(async () => {
    const s = await window.__circle.media.stats();
    return { generation: s?.generation ?? null, sending: s?.sending ?? false, packetsSent: s?.packetsSent ?? 0, direction: s?.direction ?? null };
  });
}

/** Polls `sample()` until `ok(value)`; fails with `what` and the last value. */
export async function poll(what, sample, ok, timeout = 10_000, every = 100) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await sample();
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last value: ${JSON.stringify(last)})`);
    await sleep(every);
  }
}

/**
 * Waits until `listener` hears `speaker`: on one track with `speaker`'s stream id, the packets go up by
 * at least `packets` and the decoded audio carries energy (Chromium's fake microphone beeps).
 * `after` (an earlier `received` sample) makes it count only what came since; `generation` waits for
 * that voice connection (after a resume). Returns the last sample.
 */
export async function expectHears(listener, speaker, { after = null, generation = null, packets = 25, timeout = 10_000 } = {}) {
  let first = null;
  return poll(
    `${listener.name} to hear ${speaker.name}`,
    () => received(listener, speaker.name),
    (s) => {
      if (!s.track || (generation !== null && s.generation < generation)) return false;
      // Counted from: the earlier sample if it was of this very track, zero on a track that came
      // since, or else the first sample seen.
      let base;
      if (after && after.track === s.track) base = after;
      else if (after) base = { packets: 0, energy: 0 };
      else {
        if (!first || first.track !== s.track) first = s;
        base = first;
      }
      return s.packets >= base.packets + packets && s.energy > base.energy;
    },
    timeout,
  );
}

/**
 * Checks that `listener` receives nothing from `speaker` for `windowMs`: once the packet count has
 * stood still for half a second (packets already in flight when the gate closed), it is measured
 * over the window and must not move. Returns the sample at the end of the window.
 */
export async function expectSilence(listener, speaker, windowMs = 1500) {
  try {
    return await measureSilence(listener, speaker, windowMs);
  } catch (e) {
    // What the listener receives from whom, to tell a relay that forwards a muted voice from one
    // that puts a voice on the wrong track.
    const seen = await listener.page.evaluate(async () => {
      const c = window.__circle;
      const names = Object.fromEntries([...(c.state?.participants.values() ?? [])].map((p) => [p.stream, p.name]));
      const s = await c.media.stats();
      return Object.entries(s?.streams ?? {}).map(([id, r]) => `${names[id] ?? id}: ${r.packetsReceived} packets on ${r.track}`);
    });
    e.message += `; ${listener.name} receives ${seen.join(', ')}`;
    throw e;
  }
}

async function measureSilence(listener, speaker, windowMs) {
  let prev = null;
  const settled = await poll(
    `${speaker.name}'s packets to stop reaching ${listener.name}`,
    () => received(listener, speaker.name),
    (s) => {
      const still = prev && prev.track === s.track && prev.packets === s.packets;
      prev = s;
      return still;
    },
    10_000,
    500,
  );
  await sleep(windowMs);
  const end = await received(listener, speaker.name);
  if (end.track === settled.track && end.packets !== settled.packets) {
    throw new Error(`${listener.name} received ${end.packets - settled.packets} packets from ${speaker.name} in ${windowMs} ms of silence`);
  }
  if (end.track !== settled.track && end.packets > 0) {
    throw new Error(`${listener.name} received ${end.packets} packets from ${speaker.name} on a new track in ${windowMs} ms of silence`);
  }
  return end;
}
