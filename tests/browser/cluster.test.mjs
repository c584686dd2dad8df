// Cluster mode in real Chromium (issue 12, part 2): two nodes of this test's own sharing a
// `redis-server` (persistence off). The meeting is placed on node B; Ann and Ben open the link on
// node A's page, whose server is A. A answers their `join` with `wrong_node` and B's URL; the page
// follows it, and they meet on B: each sees the other and hears the other. Every step waits on what
// a person would see or on what a page's voice connection receives; none sleeps.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { expectHears, launch, ownServer, person, row, seeText } from './lib.mjs';

const TOKEN_KEY = 'browser-cluster-token-key-0123456789abcdef';

/** `redis-server`, from Debian's package when missing. */
function redisServer() {
  const found = () => spawnSync('redis-server', ['--version']).status === 0;
  const install = (args) => spawnSync('apt-get', args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: 'ignore' }).status === 0;
  if (!found() && !install(['install', '-y', '--no-install-recommends', 'redis-server'])) {
    // The package lists may be missing or stale on a fresh machine.
    install(['update']);
    install(['install', '-y', '--no-install-recommends', 'redis-server']);
  }
  assert.ok(found(), 'redis-server is missing and apt-get could not install it (run as root)');
  return 'redis-server';
}

/** A free loopback port, chosen by the kernel. */
function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts `redis-server` on a free loopback port; resolves once it answers, with a `stop()`. */
async function startRedis() {
  const port = await freePort();
  const child = spawn(redisServer(), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', '/tmp'], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 20_000;
  while (spawnSync('redis-cli', ['-p', String(port), 'PING']).stdout?.toString().trim() !== 'PONG') {
    assert.ok(Date.now() < deadline, 'redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `redis://127.0.0.1:${port}/0`, stop: () => child.kill('SIGKILL') };
}

/** Waits until the node's readiness says it is registered in the cluster. */
async function registered(server) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const body = await fetch(`${server.apiUrl}/readyz`).then((r) => r.json(), () => null);
    if (body?.cluster === 'up') return;
    assert.ok(Date.now() < deadline, `${server.apiUrl} never registered`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Opens the link, joins under the person's name and waits to be in. */
async function joinRoom(p, url, title) {
  await p.page.goto(url);
  await seeText(p.page, 'h1', title);
  await p.page.fill('#name', p.name);
  await p.page.getByRole('button', { name: 'Join muted' }).click();
  await p.page.locator('#people-title').waitFor();
}

async function unmute(p) {
  await p.page.getByRole('button', { name: 'Unmute' }).click();
}

test('a member who reaches the wrong node is sent to the meeting, and hears and is heard there', async () => {
  const redis = await startRedis();
  const cluster = (id, env = {}) => ({
    CIRCLE_CLUSTER__REDIS_URL: redis.url,
    CIRCLE_CLUSTER__NODE_ID: id,
    CIRCLE_AUTH__TOKEN_KEY: TOKEN_KEY,
    ...env,
  });
  // Placement breaks ties by node id: with both empty, the meeting goes to B ("n1").
  const a = await ownServer('cluster-a', cluster('n2'));
  // B is joined from pages A serves: it allows A's page origin.
  const b = await ownServer('cluster-b', cluster('n1', { CIRCLE_CLIENT__ALLOWED_ORIGINS: JSON.stringify([a.clientUrl]) }));
  const browser = await launch();
  try {
    await Promise.all([a.start(), b.start()]);
    await Promise.all([registered(a), registered(b)]);
    const bWs = `${b.apiUrl.replace('http', 'ws')}/ws`;
    const res = await fetch(`${a.apiUrl}/api/rooms`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Thursday group', settings: { waiting_room: false, mute_on_entry: false } }),
    });
    assert.equal(res.status, 201);
    const room = await res.json();
    assert.equal(room.websocket_url, bWs, 'the meeting is on node B');

    const ann = await person(browser, 'Ann', { server: a });
    const ben = await person(browser, 'Ben', { server: a });
    const link = `${a.clientUrl}/#room=${room.room}`;
    await joinRoom(ann, link, 'Thursday group');
    await joinRoom(ben, link, 'Thursday group');
    // Each page asked A first, then followed A's answer to B.
    for (const p of [ann, ben]) {
      const urls = await p.page.evaluate(() => window.__sockets.map((s) => s.url));
      assert.ok(urls.some((u) => u.startsWith(a.apiUrl.replace('http', 'ws'))), `${p.name} asked A first: ${urls}`);
      assert.equal(urls.at(-1), bWs, `${p.name} is connected to B`);
    }
    await row(ann.page, 'Ben').waitFor();
    await row(ben.page, 'Ann').waitFor();
    await Promise.all([unmute(ann), unmute(ben)]);
    await Promise.all([expectHears(ann, ben, { timeout: 30_000 }), expectHears(ben, ann, { timeout: 30_000 })]);
    for (const p of [ann, ben]) assert.deepEqual(p.errors, []);
  } finally {
    await browser.close();
    await Promise.all([a.close(), b.close()]);
    redis.stop();
  }
});
