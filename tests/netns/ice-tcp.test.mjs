// (b) A member on a network that drops every UDP packet (the office) reaches the relay over ICE-TCP,
// and hears and is heard by a member at home (behind NAT, over UDP).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { received } from '../browser/lib.mjs';
import {
  MEDIA_PORT, SERVER_IP, browserIn, createRoom, errors, expectSelectedPair, hearEachOther, insecureOriginAsSecure,
  nftCounter, person, plainConfig, startServer,
} from './lib.mjs';

// The server's ICE-TCP setting (issue #7): passive TCP candidates on the media port. If the server
// names it otherwise, change it here; until the server knows it, this test is skipped saying so.
const ICE_TCP_CONFIG = { CIRCLE_MEDIA__TCP_LISTEN: `0.0.0.0:${MEDIA_PORT}` };

test('(b) UDP blocked: voice over ICE-TCP, both ways', async (t) => {
  const config = { ...plainConfig(), ...ICE_TCP_CONFIG };
  const server = await startServer('ice-tcp', config, { health: `http://${SERVER_IP}:7700/healthz` });
  if (server.unsupported) {
    t.skip(`needs ICE-TCP in the server (${Object.keys(ICE_TCP_CONFIG)}): it says ${server.unsupported}`);
    return;
  }
  const browsers = [];
  try {
    const flags = insecureOriginAsSecure(config.CIRCLE_CLIENT__URL);
    const [officeBrowser, homeBrowser] = await Promise.all([browserIn('office', { args: flags }), browserIn('home', { args: flags })]);
    browsers.push(officeBrowser, homeBrowser);
    const cy = await person(officeBrowser, 'Cy');
    const ana = await person(homeBrowser, 'Ana');

    const [droppedBefore, officeUdpBefore, mediaTcpBefore] = await Promise.all([
      nftCounter('office', 'inet', 'circle_test', 'udp_dropped'),
      nftCounter('corp', 'ip', 'circle_test', 'to_server_udp'),
      nftCounter('corp', 'ip', 'circle_test', 'to_media_tcp'),
    ]);
    const room = await createRoom(config.CIRCLE_SERVER__PUBLIC_URL, 'Network check');
    const started = Date.now();
    await hearEachOther(cy, ana, room.join_url);
    t.diagnostic(`both heard within ${Date.now() - started} ms of joining`);

    const [c, a] = await Promise.all([expectSelectedPair(cy), expectSelectedPair(ana)]);
    t.diagnostic(`Cy (UDP blocked) selected ${JSON.stringify(c)}`);
    t.diagnostic(`Ana (home) selected ${JSON.stringify(a)}`);
    // Cy's browser connected out to the server's passive TCP candidate on the media port.
    assert.deepEqual(
      { type: c.remote.type, protocol: c.remote.protocol, address: c.remote.address, port: c.remote.port },
      { type: 'host', protocol: 'tcp', address: SERVER_IP, port: MEDIA_PORT },
    );
    assert.equal(c.local.protocol, 'tcp');
    assert.notEqual(c.local.type, 'relay');
    // Ana, whose network lets UDP through, still uses UDP.
    assert.deepEqual(
      { type: a.remote.type, protocol: a.remote.protocol, address: a.remote.address, port: a.remote.port },
      { type: 'host', protocol: 'udp', address: SERVER_IP, port: MEDIA_PORT },
    );

    // The block was real: Cy's browser did try UDP, and the office machine dropped it; not one UDP
    // packet from the office reached the server. So every packet of Cy's that Ana received came over
    // TCP, to the media port.
    const cyHeard = (await received(ana, 'Cy')).packets;
    const [dropped, officeUdp, officeMediaTcp] = await Promise.all([
      nftCounter('office', 'inet', 'circle_test', 'udp_dropped'),
      nftCounter('corp', 'ip', 'circle_test', 'to_server_udp'),
      nftCounter('corp', 'ip', 'circle_test', 'to_media_tcp'),
    ]);
    t.diagnostic(`office: ${dropped - droppedBefore} UDP packets dropped, ${officeMediaTcp - mediaTcpBefore} TCP segments to the media port; Ana received ${cyHeard} packets from Cy`);
    assert.ok(dropped > droppedBefore, 'the office dropped no UDP: Cy never tried it');
    assert.equal(officeUdp - officeUdpBefore, 0, 'UDP from the office reached the server');
    assert.ok(cyHeard > 0, 'Ana received nothing from Cy');
    assert.ok(officeMediaTcp > mediaTcpBefore, 'nothing went from the office to the media port over TCP');

    assert.deepEqual(errors([cy, ana]), []);
  } finally {
    await Promise.all(browsers.map((b) => b.close()));
    await server.stop();
  }
});
