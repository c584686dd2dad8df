// (a) A member behind a home router's NAT and a member with a public address reach the server's
// advertised address over UDP, and hear each other through the relay.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { received } from '../browser/lib.mjs';
import {
  MEDIA_PORT, SERVER_IP, browserIn, createRoom, errors, expectSelectedPair, hearEachOther, insecureOriginAsSecure,
  nftCounter, person, plainConfig, startServer,
} from './lib.mjs';

test('(a) behind a NAT: voice over UDP to the advertised address, both ways', async (t) => {
  const config = plainConfig();
  const server = await startServer('nat', config, { health: `http://${SERVER_IP}:7700/healthz` });
  assert.ok(!server.unsupported, server.unsupported);
  const browsers = [];
  try {
    const flags = insecureOriginAsSecure(config.CIRCLE_CLIENT__URL);
    const [homeBrowser, pubBrowser] = await Promise.all([browserIn('home', { args: flags }), browserIn('pub', { args: flags })]);
    browsers.push(homeBrowser, pubBrowser);
    const ana = await person(homeBrowser, 'Ana');
    const ben = await person(pubBrowser, 'Ben');

    const udpBefore = await nftCounter('nat', 'ip', 'circle_test', 'to_server_udp');
    const room = await createRoom(config.CIRCLE_SERVER__PUBLIC_URL, 'Network check');
    const started = Date.now();
    await hearEachOther(ana, ben, room.join_url);
    t.diagnostic(`both heard within ${Date.now() - started} ms of joining`);

    // Each browser's ICE agent chose the server's advertised host candidate over UDP, from an
    // address of its own (no STUN, no relay). Chromium calls its side "prflx" when it learned it from
    // the server's answer to its checks (behind the NAT: the router's public address), and does not
    // tell the page that address.
    const [a, b] = await Promise.all([expectSelectedPair(ana), expectSelectedPair(ben)]);
    t.diagnostic(`Ana (behind NAT) selected ${JSON.stringify(a)}`);
    t.diagnostic(`Ben (public) selected ${JSON.stringify(b)}`);
    for (const pair of [a, b]) {
      assert.deepEqual(
        { type: pair.remote.type, protocol: pair.remote.protocol, address: pair.remote.address, port: pair.remote.port },
        { type: 'host', protocol: 'udp', address: SERVER_IP, port: MEDIA_PORT },
      );
      assert.ok(['host', 'prflx'].includes(pair.local.type), `local candidate ${pair.local.type}`);
      assert.equal(pair.local.protocol, 'udp');
    }
    // And her voice really went through the NAT router: every packet of hers that Ben received
    // (the relay forwards each one) had passed the router on its way to the server.
    const benGot = (await received(ben, 'Ana')).packets;
    const udpThrough = (await nftCounter('nat', 'ip', 'circle_test', 'to_server_udp')) - udpBefore;
    t.diagnostic(`Ben received ${benGot} packets from Ana; the home router forwarded ${udpThrough} UDP packets to the server`);
    assert.ok(benGot > 0 && udpThrough >= benGot, `Ben received ${benGot} packets from Ana, the home router forwarded ${udpThrough}`);

    assert.deepEqual(errors([ana, ben]), []);
  } finally {
    await Promise.all(browsers.map((b) => b.close()));
    await server.stop();
  }
});
