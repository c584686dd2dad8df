// (c) Circle's own TURN relay over TLS: a member whose network lets out only TCP to the server's
// HTTPS and TURN-over-TLS ports (the "locked" machine) hears and is heard through it; and the relay
// refuses to relay to any address but the voice relay's own. The cases are in cases.mjs.

import { test } from 'node:test';
import { caseTurnRefuses, caseTurnTls } from './cases.mjs';
import { SERVER_IP, TURN_TLS_PORT, startServer, testCa, tlsConfig } from './lib.mjs';

// The server's embedded TURN relay (issue #7; crates/circle-turn, not yet started by the server):
// TURN over TLS on its own port, with the certificate of `[tls]`, handed to browsers in
// `joined.ice_servers` as a `turns:` URL with credentials. The key follows circle-turn's
// `TurnConfig::tls`; if the server names the setting otherwise, change it here. Until the server
// knows it, these tests are skipped saying so.
const TURN_CONFIG = {
  CIRCLE_TURN__TLS: `${SERVER_IP}:${TURN_TLS_PORT}`,
  CIRCLE_TURN__SECRET: "netns test secret, shared with nobody",
};

/** Runs `body` against Circle with TLS and TURN, or skips saying what the server lacks. */
async function withTurnServer(t, name, body) {
  const tls = await testCa(process.env.NETNS_SERVER_NAME);
  const config = { ...tlsConfig(tls), ...TURN_CONFIG };
  const origin = config.CIRCLE_SERVER__PUBLIC_URL;
  const server = await startServer(name, config, { health: `${origin}/healthz`, curlArgs: ['--cacert', tls.ca] });
  if (server.unsupported) {
    t.skip(`needs TURN over TLS in the server (${Object.keys(TURN_CONFIG)}) and TLS: it says ${server.unsupported}`);
    return;
  }
  try {
    await body({ origin, ca: tls.ca, turnPort: TURN_TLS_PORT });
  } finally {
    await server.stop();
  }
}

test('(c) only TCP to 443 and the TURN-over-TLS port: voice through Circle’s TURN over TLS, both ways', (t) =>
  withTurnServer(t, 'turn', (s) => caseTurnTls(t, s)));

test('Circle’s TURN relays only to the voice relay: a permission for any other address is refused', (t) =>
  withTurnServer(t, 'turn-refuses', (s) => caseTurnRefuses(t, s)));
