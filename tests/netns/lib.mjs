// Helpers for the network-namespace tests (run by tests/netns/run.sh, which builds the network and
// exports its names and addresses as NETNS_*). The browser side (people, waits, packet counts) is
// tests/browser/lib.mjs; this file adds what a network of namespaces needs: a server started in its
// namespace with a given configuration, a browser per member namespace, the candidate pair a
// browser's ICE agent selected, the routers' and firewalls' packet counters, and a test CA.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expectHears, launch, person, poll, seeText, until } from '../browser/lib.mjs';

const run = promisify(execFile);
const env = process.env;
if (!env.NETNS_PREFIX) {
  throw new Error('NETNS_PREFIX is not set: run tests/netns/run.sh, which builds the network these tests need');
}

export const ROOT = env.NETNS_ROOT;
export const WORK = env.NETNS_WORK;
export const SERVER_IP = env.NETNS_SERVER_IP;
export const ADDR = {
  pub: env.NETNS_PUB_IP,
  home: env.NETNS_HOME_IP,
  natPublic: env.NETNS_NAT_PUBLIC_IP,
  office: env.NETNS_OFFICE_IP,
  locked: env.NETNS_LOCKED_IP,
  corpPublic: env.NETNS_CORP_PUBLIC_IP,
};
export const HTTPS_PORT = Number(env.NETNS_HTTPS_PORT);
export const TURN_TLS_PORT = Number(env.NETNS_TURN_TLS_PORT);
/** The UDP (and, with ICE-TCP, TCP) port of the voice relay in every test. */
export const MEDIA_PORT = Number(env.NETNS_MEDIA_PORT);

/** The namespace of a role in run.sh's network (`srv`, `home`, `office`, ...). */
export const ns = (role) => `${env.NETNS_PREFIX}-${role}`;

/** Runs a command inside a role's namespace; resolves with its stdout. */
export async function inNs(role, cmd, args) {
  const { stdout } = await run('ip', ['netns', 'exec', ns(role), cmd, ...args], { maxBuffer: 1 << 20 });
  return stdout;
}

/**
 * The plain-HTTP server of today's deployment shape: API on :7700, web client on :8080, the voice
 * relay bound to every address on UDP :7701 and advertising the server's public address.
 */
export function plainConfig() {
  const client = `http://${SERVER_IP}:8080`;
  return {
    CIRCLE_SERVER__LISTEN: `${SERVER_IP}:7700`,
    CIRCLE_SERVER__PUBLIC_URL: `http://${SERVER_IP}:7700`,
    CIRCLE_CLIENT__LISTEN: `${SERVER_IP}:8080`,
    CIRCLE_CLIENT__URL: client,
    CIRCLE_CLIENT__SERVE_DIR: join(ROOT, 'web-client'),
    CIRCLE_CLIENT__ALLOWED_ORIGINS: JSON.stringify([client]),
    CIRCLE_MEDIA__LISTEN: `0.0.0.0:${MEDIA_PORT}`,
    // One relay worker, on MEDIA_PORT: the cases check the exact port a browser reaches (with
    // several, a room lands on one of MEDIA_PORT…+n; crates/circle-media/tests/workers.rs covers them).
    CIRCLE_MEDIA__WORKERS: '1',
    CIRCLE_MEDIA__ADVERTISED_IP: SERVER_IP,
  };
}

/**
 * Circle serving HTTPS itself (issue #7, `[tls]`): the page, the API and the websocket on one origin,
 * `https://NETNS_SERVER_NAME` on port 443, with the certificate `tls` (from `testCa`); voice as in
 * `plainConfig`.
 */
export function tlsConfig(tls) {
  const origin = `https://${env.NETNS_SERVER_NAME}`;
  return {
    CIRCLE_TLS__CERT: tls.cert,
    CIRCLE_TLS__KEY: tls.key,
    CIRCLE_SERVER__LISTEN: `${SERVER_IP}:${HTTPS_PORT}`,
    CIRCLE_SERVER__PUBLIC_URL: origin,
    CIRCLE_CLIENT__SAME_ORIGIN: 'true',
    CIRCLE_CLIENT__SERVE_DIR: oneOriginClient(),
    CIRCLE_MEDIA__LISTEN: `0.0.0.0:${MEDIA_PORT}`,
    // One relay worker, on MEDIA_PORT: the cases check the exact port a browser reaches (with
    // several, a room lands on one of MEDIA_PORT…+n; crates/circle-media/tests/workers.rs covers them).
    CIRCLE_MEDIA__WORKERS: '1',
    CIRCLE_MEDIA__ADVERTISED_IP: SERVER_IP,
  };
}

/**
 * The web client as docs/DEPLOY.md has it installed for one origin: a copy of web-client/ whose
 * config.js (its one setting) points the page at the origin it was served from, not at port 7700.
 */
function oneOriginClient() {
  const dir = join(WORK, 'web-client-one-origin');
  cpSync(join(ROOT, 'web-client'), dir, { recursive: true });
  writeFileSync(join(dir, 'config.js'), 'export const SERVER_URL = location.origin;\n');
  return dir;
}

/**
 * Starts `circle` in the server's namespace with `config` (CIRCLE_* variables) and waits until
 * `health` (a URL, fetched with curl from the tests' namespace; `curlArgs` for TLS) answers. If the
 * server refuses the configuration because it does not know one of its keys, resolves
 * `{ unsupported }` with the server's own words, so a test of a feature the server does not have yet
 * is skipped saying what it waits for (never passed). Otherwise `{ stop, log }`.
 */
export async function startServer(name, config, { health, curlArgs = [] }) {
  const log = join(WORK, `server-${name}.log`);
  const out = openSync(log, 'w');
  const child = spawn('ip', ['netns', 'exec', ns('srv'), env.NETNS_CIRCLE_BIN], {
    cwd: ROOT,
    env: { PATH: env.PATH, RUST_LOG: env.RUST_LOG ?? 'info', ...config },
    stdio: ['ignore', out, out],
  });
  let exited = null;
  const gone = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));
  const stop = async () => {
    if (!exited) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  };
  const text = () => readFileSync(log, 'utf8');
  try {
    await poll(
      `the ${name} server to answer ${health}`,
      async () => exited ?? (await curl([...curlArgs, '-fsS', '-o', '/dev/null', health]).then(() => 'up', () => null)),
      (s) => s !== null,
      15_000,
      100,
    );
  } catch (e) {
    await stop();
    throw new Error(`${e.message}; its log:\n${text()}`);
  }
  if (exited) {
    // figment: "unknown field: found `same_origin`, expected `one of ...` for key "CLIENT.SAME_ORIGIN" ..."
    const unknown = text().match(/unknown field: found `[^`]+`.*?for key "[^"]+"/);
    if (unknown) return { unsupported: unknown[0] };
    throw new Error(`the ${name} server exited (${JSON.stringify(exited)}); its log:\n${text()}`);
  }
  return { stop, log: text };
}

/** curl from the tests' own namespace (the operator's machine on the internet). */
export async function curl(args) {
  const { stdout } = await run('curl', ['--max-time', '10', ...args], { maxBuffer: 1 << 20 });
  return stdout;
}

/** Creates a room through the API at `api` (curl, so `curlArgs` can trust a test CA); its JSON. */
export async function createRoom(api, title, curlArgs = []) {
  const body = JSON.stringify({ title, settings: { waiting_room: false, mute_on_entry: false } });
  const out = await curl([...curlArgs, '-fsS', '-X', 'POST', '-H', 'content-type: application/json', '--data', body, `${api}/api/rooms`]);
  return JSON.parse(out);
}

/**
 * A browser whose traffic leaves by `role`'s namespace only. It gets a home directory of its own, so
 * the only certificates it trusts beyond the system's are the ones a test puts in `nssdb` (see
 * `trustingHome`); `args` are more Chromium flags.
 */
export async function browserIn(role, { home = null, args = [] } = {}) {
  return launch({
    executablePath: env.NETNS_CHROMIUM,
    env: { ...env, NETNS_MEMBER_NS: ns(role), HOME: home ?? mkdtempSync(join(WORK, `home-${role}-`)) },
    args,
  });
}

/**
 * Chromium requires a secure context for the microphone: a plain-HTTP page at a public address is
 * one only when the browser is told to treat that origin as secure (a real deployment serves HTTPS).
 */
export function insecureOriginAsSecure(origin) {
  return [`--unsafely-treat-insecure-origin-as-secure=${origin}`];
}

/** Joins by the link, muted, and waits for the room (as tests/browser/voice.test.mjs does). */
export async function joinRoom(p, url) {
  try {
    await p.page.goto(url);
    await seeText(p.page, 'h1', 'Network check');
    await p.page.fill('#name', p.name);
    await p.page.getByRole('button', { name: 'Join muted' }).click();
    await p.page.locator('#people-title').waitFor({ timeout: 20_000 });
  } catch (e) {
    // What the person sees, and what the page logged: "Could not reach the meeting server" and a
    // refused connection say more than a timeout.
    const shown = await p.page.evaluate(() => document.body?.innerText ?? '').catch(() => 'page gone');
    const first = e.message.split('\n')[0];
    throw new Error(`${p.name} could not join (${first}); the page shows ${JSON.stringify(shown.slice(0, 300))}; its errors: ${JSON.stringify(p.errors)}`, { cause: e });
  }
}

/** Unmutes and waits until the page says the microphone is on. */
export async function unmute(p) {
  await p.page.getByRole('button', { name: 'Unmute' }).click();
  await until(p.page, `${p.name}'s mic to be on`, () => document.querySelector('[data-key="mic"]').textContent === 'Mute');
}

/**
 * Two members (already in their browsers, `a` and `b`) join one room, unmute, and each must hear
 * the other: packets counted on the track carrying the other's stream, with audio energy in them.
 * `timeout` allows for ICE trying (and the firewall dropping) the paths that do not work first.
 */
export async function hearEachOther(a, b, url, { timeout = 30_000 } = {}) {
  await Promise.all([joinRoom(a, url), joinRoom(b, url)]);
  await Promise.all([unmute(a), unmute(b)]);
  return Promise.all([expectHears(a, b, { timeout }), expectHears(b, a, { timeout })]);
}

/**
 * The candidate pair a page's voice connection selected, from `RTCPeerConnection.getStats()`: the
 * transport's `selectedCandidatePairId`, with both candidates (type, protocol, address, port, and for
 * a relay candidate the protocol spoken to the TURN server).
 */
export function selectedPair(p) {
  return p.page.evaluate(async () => {
    const pc = window.__circle.media.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    const transport = [...stats.values()].find((s) => s.type === 'transport');
    const pair = transport?.selectedCandidatePairId ? stats.get(transport.selectedCandidatePairId) : undefined;
    if (!pair) return null;
    const candidate = (id) => {
      const c = stats.get(id);
      return {
        type: c.candidateType,
        protocol: c.protocol,
        address: c.address ?? null,
        port: c.port,
        relayProtocol: c.relayProtocol ?? null,
        tcpType: c.tcpType ?? null,
      };
    };
    return {
      state: pair.state,
      bytesReceived: pair.bytesReceived,
      local: candidate(pair.localCandidateId),
      remote: candidate(pair.remoteCandidateId),
    };
  });
}

/** Waits until `p`'s selected pair has succeeded and carried voice; returns it. */
export function expectSelectedPair(p) {
  return poll(
    `${p.name}'s selected candidate pair`,
    () => selectedPair(p),
    (s) => s?.state === 'succeeded' && s.bytesReceived > 0,
  );
}

/** The packets a named nftables counter in `role`'s namespace has counted. */
export async function nftCounter(role, family, table, counter) {
  const out = await inNs(role, 'nft', ['-j', 'list', 'counter', family, table, counter]);
  const entry = JSON.parse(out).nftables.find((e) => e.counter);
  assert.ok(entry, `no counter ${counter} in ${role}: ${out}`);
  return entry.counter.packets;
}

/** What each person's page logged as errors (the browser tests' own check). */
export function errors(people) {
  return people.flatMap((p) => p.errors);
}

/** Opens a person in `browser` (tests/browser/lib.mjs `person`). */
export { person };

/**
 * A certificate authority made for this run, and a server certificate it signed for `name` and the
 * server's address. `{ ca, cert, key }` are file paths under the run's work directory.
 */
export async function testCa(name) {
  const dir = join(WORK, 'ca');
  mkdirSync(dir, { recursive: true });
  const f = (n) => join(dir, n);
  const openssl = (...args) => run('openssl', args);
  await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=Circle netns test CA', '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  await openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
    '-keyout', f('server.key'), '-out', f('server.csr'));
  writeFileSync(f('server.ext'), [
    `subjectAltName=DNS:${name},IP:${SERVER_IP}`,
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    '',
  ].join('\n'));
  await openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '1', '-extfile', f('server.ext'), '-out', f('server.pem'));
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

/**
 * A home directory whose NSS database (the one Chromium on Linux reads for locally added roots)
 * trusts `ca` to identify web sites: a browser started with it trusts the test CA, and no other
 * browser, nor the machine, does.
 */
export async function trustingHome(ca) {
  const home = mkdtempSync(join(WORK, 'home-trusting-'));
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  await run('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
  await run('certutil', ['-A', '-d', `sql:${db}`, '-n', 'circle-netns-test-ca', '-t', 'C,,', '-i', ca]);
  return home;
}

/**
 * A UDP socket at `ip:port` in `role`'s namespace that counts the packets it receives.
 * `await listening` before relying on it; `stop()` resolves with the count.
 */
export function udpListener(role, ip, port) {
  const child = spawn('ip', ['netns', 'exec', ns(role), process.execPath, '-e', `
    const s = require('dgram').createSocket('udp4');
    let n = 0;
    s.on('message', () => n++);
    s.bind(${port}, '${ip}', () => console.log('listening'));
    process.stdin.on('end', () => { console.log(n); process.exit(0); });
    process.stdin.resume();
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const lines = [];
  const waiters = [];
  child.stdout.on('data', (d) => {
    out += d;
    for (let i; (i = out.indexOf('\n')) >= 0; out = out.slice(i + 1)) lines.push(out.slice(0, i));
    waiters.splice(0).forEach((w) => w());
  });
  const line = (n) => new Promise((resolve, reject) => {
    const check = () => (lines.length > n ? resolve(lines[n]) : waiters.push(check));
    child.once('exit', () => (lines.length > n ? resolve(lines[n]) : reject(new Error(`the UDP listener in ${role} exited`))));
    check();
  });
  return {
    listening: line(0),
    stop: async () => {
      child.stdin.end();
      return Number(await line(1));
    },
  };
}

/**
 * Starts `cmd args` in `role`'s namespace (a proxy, a TURN server), its output in the run's work
 * directory. `{ stop, log }`; `stop` ends it (SIGTERM, then SIGKILL after 5 s) and waits.
 */
export function daemonIn(role, name, cmd, args) {
  const log = join(WORK, `${name}.log`);
  const out = openSync(log, 'w');
  const child = spawn('ip', ['netns', 'exec', ns(role), cmd, ...args], { cwd: WORK, stdio: ['ignore', out, out] });
  let exited = false;
  const gone = new Promise((resolve) => child.on('exit', () => resolve((exited = true))));
  return {
    exited: () => exited,
    log: () => readFileSync(log, 'utf8'),
    stop: async () => {
      if (!exited) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/** Waits until a TCP connection to `host:port` from the tests' namespace succeeds. */
export function tcpOpen(what, host, port, daemon) {
  return poll(
    what,
    () => new Promise((resolve) => {
      if (daemon?.exited()) return resolve('exited');
      const s = connect({ host, port }, () => (s.destroy(), resolve('open')));
      s.on('error', () => resolve(null));
    }),
    (r) => r !== null,
    10_000,
    100,
  ).then((r) => {
    if (r === 'exited') throw new Error(`${what}: it exited; its log:\n${daemon.log()}`);
  });
}
