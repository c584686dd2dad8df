// (c) A member whose network lets out only TCP to the server's HTTPS and TURN-over-TLS ports (the
// "locked" machine) connects through Circle's TURN relay over TLS, and hears and is heard by a member
// with a public address. And the relay refuses to relay to any address but the voice relay's own.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { received } from '../browser/lib.mjs';
import {
  ADDR, MEDIA_PORT, SERVER_IP, TURN_TLS_PORT, browserIn, createRoom, errors, expectSelectedPair, hearEachOther, inNs,
  nftCounter, person, startServer, tlsConfig, testCa, trustingHome,
} from './lib.mjs';
import { TurnClient } from './turn-client.mjs';

const NAME = process.env.NETNS_SERVER_NAME;

// The server's embedded TURN relay (issue #7): TURN over TLS on its own port, with the certificate
// of `[tls]`, handed to browsers in `joined.ice_servers` as a `turns:` URL with credentials. If the
// server names the setting otherwise, change it here; until the server knows it, these tests are
// skipped saying so.
const TURN_CONFIG = { CIRCLE_TURN__LISTEN: `${SERVER_IP}:${TURN_TLS_PORT}` };

/** A server with TLS and TURN, or a skip reason. */
async function turnServer(name) {
  const tls = await testCa(NAME);
  const config = { ...tlsConfig(tls), ...TURN_CONFIG };
  const origin = config.CIRCLE_SERVER__PUBLIC_URL;
  const server = await startServer(name, config, { health: `${origin}/healthz`, curlArgs: ['--cacert', tls.ca] });
  const skip = server.unsupported && `needs TURN over TLS in the server (${Object.keys(TURN_CONFIG)}) and TLS: it says ${server.unsupported}`;
  return { tls, origin, server, skip };
}

/** The TURN servers the page was given in `joined`, as RTCIceServer entries. */
function iceServers(p) {
  return p.page.evaluate(() => window.__circle.media.relay.iceServers);
}

/** The `turns:` entry at the server's TURN-over-TLS port, with its credentials. */
function turnsEntry(servers) {
  const want = new RegExp(`^turns:(${NAME.replaceAll('.', '\\.')}|${SERVER_IP.replaceAll('.', '\\.')}):${TURN_TLS_PORT}(\\?transport=tcp)?$`);
  for (const s of servers) {
    const url = [s.urls].flat().find((u) => want.test(u));
    if (url) return { url, username: s.username, credential: s.credential };
  }
  return null;
}

test('(c) only TCP to 443 and the TURN-over-TLS port: voice through TURN over TLS, both ways', async (t) => {
  const { tls, origin, server, skip } = await turnServer('turn');
  if (skip) {
    t.skip(skip);
    return;
  }
  const browsers = [];
  try {
    const [lockedBrowser, pubBrowser] = await Promise.all([
      trustingHome(tls.ca).then((home) => browserIn('locked', { home })),
      trustingHome(tls.ca).then((home) => browserIn('pub', { home })),
    ]);
    browsers.push(lockedBrowser, pubBrowser);
    const dee = await person(lockedBrowser, 'Dee');
    const ben = await person(pubBrowser, 'Ben');
    await Promise.all([dee, ben].map((p) => p.context.unroute('**/config.js')));

    const droppedBefore = await nftCounter('locked', 'inet', 'circle_test', 'dropped');
    const room = await createRoom(origin, 'Network check', ['--cacert', tls.ca]);
    const started = Date.now();
    await hearEachOther(dee, ben, room.join_url);
    t.diagnostic(`both heard within ${Date.now() - started} ms of joining`);
    const turns = turnsEntry(await iceServers(dee));
    assert.ok(turns, `joined.ice_servers has no turns: URL at port ${TURN_TLS_PORT}: ${JSON.stringify(await iceServers(dee))}`);

    const [d, b] = await Promise.all([expectSelectedPair(dee), expectSelectedPair(ben)]);
    t.diagnostic(`Dee (locked) selected ${JSON.stringify(d)}`);
    t.diagnostic(`Ben (public) selected ${JSON.stringify(b)}`);
    // Dee's side is a relayed candidate she reached over TLS; its other end is the voice relay's own
    // UDP address.
    assert.deepEqual({ type: d.local.type, relayProtocol: d.local.relayProtocol }, { type: 'relay', relayProtocol: 'tls' });
    assert.deepEqual(
      { type: d.remote.type, protocol: d.remote.protocol, address: d.remote.address, port: d.remote.port },
      { type: 'host', protocol: 'udp', address: SERVER_IP, port: MEDIA_PORT },
    );
    // Ben, whose network is open, goes straight to the relay over UDP.
    assert.deepEqual(
      { type: b.remote.type, protocol: b.remote.protocol, local: b.local.type === 'relay' },
      { type: 'host', protocol: 'udp', local: false },
    );
    // The lock was real: Dee's browser tried the direct ways, and the firewall dropped them.
    const dropped = (await nftCounter('locked', 'inet', 'circle_test', 'dropped')) - droppedBefore;
    assert.ok(dropped > 0, 'the locked machine dropped nothing: Dee never tried another way');
    assert.ok((await received(ben, 'Dee')).packets > 0);

    assert.deepEqual(errors([dee, ben]), []);
  } finally {
    await Promise.all(browsers.map((b) => b.close()));
    await server.stop();
  }
});

test('TURN relays only to the voice relay: a permission for any other address is refused', async (t) => {
  const { tls, origin, server, skip } = await turnServer('turn-refuses');
  if (skip) {
    t.skip(skip);
    return;
  }
  const browsers = [];
  let turn;
  // A UDP listener on the public member's machine: the address an abuser would have the relay
  // send to. It must receive nothing.
  const listener = inNs('pub', 'timeout', ['8', 'node', '-e', `
    const s = require('dgram').createSocket('udp4');
    let n = 0;
    s.on('message', () => n++);
    s.bind(9999, '${ADDR.pub}');
    setTimeout(() => { console.log(n); process.exit(0); }, 6000);
  `]);
  try {
    // Credentials the way any member gets them: from joining a meeting.
    const browser = await browserIn('pub', { home: await trustingHome(tls.ca) });
    browsers.push(browser);
    const ben = await person(browser, 'Ben');
    await ben.context.unroute('**/config.js');
    const room = await createRoom(origin, 'Network check', ['--cacert', tls.ca]);
    await ben.page.goto(room.join_url);
    await ben.page.fill('#name', 'Ben');
    await ben.page.getByRole('button', { name: 'Join muted' }).click();
    await ben.page.locator('#people-title').waitFor();
    const turns = turnsEntry(await iceServers(ben));
    assert.ok(turns, `joined.ice_servers has no turns: URL at port ${TURN_TLS_PORT}`);

    turn = await TurnClient.connect({ host: SERVER_IP, port: TURN_TLS_PORT, servername: NAME, ca: tls.ca, username: turns.username, credential: turns.credential });
    const allocation = await turn.allocate();
    assert.ok(allocation.ok, `allocation refused: ${JSON.stringify(allocation.error)}`);
    // The voice relay's own address is allowed (or Dee could never be heard)...
    assert.deepEqual(await turn.createPermission(SERVER_IP, MEDIA_PORT), { ok: true, error: null });
    // ...and nothing else: another machine on the internet, the server's loopback (where an admin
    // port may listen), a private network behind it.
    for (const [ip, port] of [[ADDR.pub, 9999], ['127.0.0.1', 7700], [ADDR.natPublic, 9999]]) {
      const permission = await turn.createPermission(ip, port);
      assert.equal(permission.ok, false, `a permission to ${ip} was granted`);
      assert.equal(permission.error?.code, 403, `a permission to ${ip}: ${JSON.stringify(permission.error)}`);
      const channel = await turn.channelBind(ip, port);
      assert.equal(channel.ok, false, `a channel to ${ip}:${port} was bound`);
    }
    // Refused, and not relayed anyway: data sent towards the public member never reaches it.
    for (let i = 0; i < 20; i++) turn.sendIndication(ADDR.pub, 9999, Buffer.from('not for you'));
    // A request after them: once it is answered, the relay has read (and dropped) every one.
    await turn.createPermission(SERVER_IP, MEDIA_PORT);
    turn.close();
    turn = null;
    assert.equal((await listener).trim(), '0', 'the relay sent packets to the public member');
  } finally {
    turn?.close();
    await Promise.all(browsers.map((b) => b.close()));
    await server.stop();
    await listener.catch(() => {});
  }
});
