// The HTTPS and TURN cases, written once and run against each way of deploying them: Circle serving
// TLS and TURN itself (https.test.mjs, turn.test.mjs), and today's server behind the deployment kit,
// nginx and coturn as docs/DEPLOY.md sets them up (deploy.test.mjs). Each takes the server's HTTPS
// origin and the test CA that signed its certificate, and owns the browsers it starts.

import assert from 'node:assert/strict';
import { received } from '../browser/lib.mjs';
import {
  ADDR, MEDIA_PORT, SERVER_IP, browserIn, createRoom, curl, errors, expectSelectedPair, hearEachOther, joinRoom,
  nftCounter, person, trustingHome, udpListener,
} from './lib.mjs';
import { TurnClient } from './turn-client.mjs';

const NAME = process.env.NETNS_SERVER_NAME;

/** A person in a browser in `role`'s namespace that trusts the test CA, using the page's own config.js. */
async function trustingPerson(role, name, ca, browsers) {
  const browser = await browserIn(role, { home: await trustingHome(ca) });
  browsers.push(browser);
  const p = await person(browser, name);
  // tests/browser points config.js at its test server; here the page uses the one it is served.
  await p.context.unroute('**/config.js');
  return p;
}

/** The ICE servers the page was given in `joined`, as RTCIceServer entries. */
function iceServers(p) {
  return p.page.evaluate(() => window.__circle.media.relay.iceServers);
}

/** The `turns:` entry for the server at `port` among `servers`, with its credentials, or null. */
function turnsEntry(servers, port) {
  const host = `(${NAME.replaceAll('.', '\\.')}|${SERVER_IP.replaceAll('.', '\\.')})`;
  const want = new RegExp(`^turns:${host}:${port}(\\?transport=tcp)?$`);
  for (const s of servers) {
    const url = [s.urls].flat().find((u) => want.test(u));
    if (url) return { url, username: s.username, credential: s.credential };
  }
  return null;
}

/**
 * (d) The page, the API and the websocket over HTTPS at `origin`: curl trusts it with the CA and
 * refuses it without; a browser without the CA refuses the page; two browsers given the CA (one
 * behind NAT) open it, talk to the API and the websocket on that origin, and hear each other over UDP.
 */
export async function caseHttps(t, { origin, ca }) {
  const cacert = ['--cacert', ca];
  const browsers = [];
  try {
    assert.equal(JSON.parse(await curl([...cacert, '-fsS', `${origin}/healthz`])).status, 'ok');
    const untrusted = await curl(['-sS', '-o', '/dev/null', `${origin}/healthz`]).then(() => null, (e) => e);
    assert.ok(untrusted, 'curl without the test CA trusted the server');
    // 60: the peer's certificate cannot be authenticated with the known CA certificates.
    assert.equal(untrusted.code, 60, `curl without the CA: ${untrusted.stderr}`);
    assert.match(await curl([...cacert, '-fsS', `${origin}/`]), /<script type="module" src="app.js">/);

    const room = await createRoom(origin, 'Network check', cacert);
    assert.ok(room.join_url.startsWith(`${origin}/`), `the room link ${room.join_url} is not on ${origin}`);

    // A browser without the test CA does not open the page.
    const stranger = await browserIn('pub');
    browsers.push(stranger);
    const s = await person(stranger, 'Stranger');
    const refused = await s.page.goto(room.join_url).then(() => null, (e) => e.message);
    assert.match(refused ?? 'the page opened', /ERR_CERT_AUTHORITY_INVALID/);

    const ana = await trustingPerson('home', 'Ana', ca, browsers);
    const ben = await trustingPerson('pub', 'Ben', ca, browsers);
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
  }
}

/**
 * (c) A member on the locked machine (only TCP to the server's 443 and 5349) and a member with a
 * public address hear each other; the locked one's selected pair is a relay candidate reached over
 * TLS at `turnPort`, ending at the voice relay's own UDP address.
 */
export async function caseTurnTls(t, { origin, ca, turnPort }) {
  const browsers = [];
  try {
    const dee = await trustingPerson('locked', 'Dee', ca, browsers);
    const ben = await trustingPerson('pub', 'Ben', ca, browsers);
    const droppedBefore = await nftCounter('locked', 'inet', 'circle_test', 'dropped');
    const room = await createRoom(origin, 'Network check', ['--cacert', ca]);
    const started = Date.now();
    await hearEachOther(dee, ben, room.join_url);
    t.diagnostic(`both heard within ${Date.now() - started} ms of joining`);
    const servers = await iceServers(dee);
    assert.ok(turnsEntry(servers, turnPort), `joined.ice_servers has no turns: URL at port ${turnPort}: ${JSON.stringify(servers)}`);

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
    // Ben, whose network is open, goes straight to the voice relay over UDP.
    assert.deepEqual(
      { type: b.remote.type, protocol: b.remote.protocol, relayed: b.local.type === 'relay' },
      { type: 'host', protocol: 'udp', relayed: false },
    );
    // The lock was real: Dee's browser tried the direct ways, and the firewall dropped them.
    const dropped = (await nftCounter('locked', 'inet', 'circle_test', 'dropped')) - droppedBefore;
    assert.ok(dropped > 0, 'the locked machine dropped nothing: Dee never tried another way');
    assert.ok((await received(ben, 'Dee')).packets > 0);
    assert.deepEqual(errors([dee, ben]), []);
  } finally {
    await Promise.all(browsers.map((b) => b.close()));
  }
}

/**
 * The TURN relay at `turnPort`, with the credentials a member is given, grants a permission for
 * the voice relay's address and refuses (403) any other: another machine on the internet, the
 * server's loopback, a router's address; and what is sent towards another machine never arrives.
 */
export async function caseTurnRefuses(t, { origin, ca, turnPort }) {
  const browsers = [];
  let turn = null;
  // A UDP listener on the public member's machine: where an abuser would have the relay send.
  const listener = udpListener('pub', ADDR.pub, 9999);
  await listener.listening;
  let relayed = null;
  try {
    // Credentials the way any member gets them: by joining a meeting.
    const ben = await trustingPerson('pub', 'Ben', ca, browsers);
    const room = await createRoom(origin, 'Network check', ['--cacert', ca]);
    await joinRoom(ben, room.join_url);
    const turns = turnsEntry(await iceServers(ben), turnPort);
    assert.ok(turns, `joined.ice_servers has no turns: URL at port ${turnPort}`);

    turn = await TurnClient.connect({ host: SERVER_IP, port: turnPort, servername: NAME, ca, username: turns.username, credential: turns.credential });
    const allocation = await turn.allocate();
    assert.ok(allocation.ok, `allocation refused: ${JSON.stringify(allocation.error)}`);
    // The voice relay's own address is allowed (or nobody behind a firewall could be heard)...
    assert.deepEqual(await turn.createPermission(SERVER_IP, MEDIA_PORT), { ok: true, error: null });
    // ...and nothing else.
    for (const [ip, port] of [[ADDR.pub, 9999], ['127.0.0.1', 7700], [ADDR.natPublic, 9999]]) {
      const permission = await turn.createPermission(ip, port);
      assert.equal(permission.ok, false, `a permission to ${ip} was granted`);
      assert.equal(permission.error?.code, 403, `a permission to ${ip}: ${JSON.stringify(permission.error)}`);
      const channel = await turn.channelBind(ip, port);
      assert.equal(channel.ok, false, `a channel to ${ip}:${port} was bound`);
    }
    // Refused, and not relayed anyway: data sent towards the public member never reaches it. A
    // request after it: once answered, the relay has read (and dropped) every indication before.
    for (let i = 0; i < 20; i++) turn.sendIndication(ADDR.pub, 9999, Buffer.from('not for you'));
    await turn.createPermission(SERVER_IP, MEDIA_PORT);
  } finally {
    turn?.close();
    await Promise.all(browsers.map((b) => b.close()));
    relayed = await listener.stop();
  }
  assert.equal(relayed, 0, 'the relay sent packets to the public member');
}
