// (d) The page, the API and the websocket served by Circle itself over HTTPS, on one origin, with a
// certificate from a CA this test makes. Only the test's browsers (and curl given the CA) trust it:
// a browser without it is refused, which shows nothing else was made to trust it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MEDIA_PORT, SERVER_IP, browserIn, createRoom, curl, errors, expectSelectedPair, hearEachOther, person, startServer,
  tlsConfig, testCa, trustingHome,
} from './lib.mjs';

test('(d) HTTPS: page, API and websocket over TLS with a test CA; voice both ways', async (t) => {
  const tls = await testCa(process.env.NETNS_SERVER_NAME);
  const config = tlsConfig(tls);
  const origin = config.CIRCLE_SERVER__PUBLIC_URL;
  const cacert = ['--cacert', tls.ca];
  const server = await startServer('https', config, { health: `${origin}/healthz`, curlArgs: cacert });
  if (server.unsupported) {
    t.skip(`needs TLS in the server ([tls] cert, key; client.same_origin): it says ${server.unsupported}`);
    return;
  }
  const browsers = [];
  try {
    // curl checks the same endpoint with the test CA, and is refused without it.
    assert.equal(JSON.parse(await curl([...cacert, '-fsS', `${origin}/healthz`])).status, 'ok');
    const untrusted = await curl(['-sS', '-o', '/dev/null', `${origin}/healthz`]).then(() => null, (e) => e);
    assert.ok(untrusted, 'curl without the test CA trusted the server');
    assert.equal(untrusted.code, 60, `curl without the CA: ${untrusted.stderr}`); // 60: peer certificate cannot be authenticated
    // The web client itself comes from the same origin.
    assert.match(await curl([...cacert, '-fsS', `${origin}/`]), /<script type="module" src="app.js">/);

    const room = await createRoom(origin, 'Network check', cacert);
    assert.ok(room.join_url.startsWith(`${origin}/`), `the room link ${room.join_url} is not on ${origin}`);

    // A browser without the test CA does not open the page.
    const stranger = await browserIn('pub');
    browsers.push(stranger);
    const s = await person(stranger, 'Stranger');
    const refused = await s.page.goto(room.join_url).then(() => null, (e) => e.message);
    assert.match(refused ?? 'the page opened', /ERR_CERT_AUTHORITY_INVALID/);
    await stranger.close();

    // Two browsers given the CA: Ana at home behind NAT, Ben with a public address.
    const [homeBrowser, pubBrowser] = await Promise.all([
      trustingHome(tls.ca).then((home) => browserIn('home', { home })),
      trustingHome(tls.ca).then((home) => browserIn('pub', { home })),
    ]);
    browsers.push(homeBrowser, pubBrowser);
    const ana = await person(homeBrowser, 'Ana');
    const ben = await person(pubBrowser, 'Ben');
    // The page's own config.js, as served (tests/browser points it at a test server instead).
    await Promise.all([ana, ben].map((p) => p.context.unroute('**/config.js')));

    await hearEachOther(ana, ben, room.join_url);
    for (const p of [ana, ben]) {
      const where = await p.page.evaluate(() => ({ page: location.origin, socket: window.__sockets.at(-1)?.url ?? null }));
      assert.equal(where.page, origin);
      assert.ok(where.socket?.startsWith(`${origin.replace('https:', 'wss:')}/`), `${p.name}'s websocket: ${where.socket}`);
    }
    const [a, b] = await Promise.all([expectSelectedPair(ana), expectSelectedPair(ben)]);
    t.diagnostic(`Ana selected ${JSON.stringify(a)}; Ben selected ${JSON.stringify(b)}`);
    for (const pair of [a, b]) {
      assert.deepEqual(
        { type: pair.remote.type, protocol: pair.remote.protocol, address: pair.remote.address, port: pair.remote.port },
        { type: 'host', protocol: 'udp', address: SERVER_IP, port: MEDIA_PORT },
      );
    }
    assert.deepEqual(errors([ana, ben]), []);
  } finally {
    await Promise.all(browsers.map((b) => b.close()));
    await server.stop();
  }
});
