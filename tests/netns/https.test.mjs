// (d) Circle serving the page, the API and the websocket itself over HTTPS, on one origin, with a
// certificate from a CA this test makes (`[tls] cert`, `key`; `client.same_origin`). Only the test's
// browsers (and curl given the CA) trust it. The case itself is in cases.mjs.

import { test } from 'node:test';
import { caseHttps } from './cases.mjs';
import { startServer, testCa, tlsConfig } from './lib.mjs';

test('(d) HTTPS served by Circle: page, API and websocket over TLS with a test CA; voice both ways', async (t) => {
  const tls = await testCa(process.env.NETNS_SERVER_NAME);
  const config = tlsConfig(tls);
  const origin = config.CIRCLE_SERVER__PUBLIC_URL;
  const server = await startServer('https', config, { health: `${origin}/healthz`, curlArgs: ['--cacert', tls.ca] });
  if (server.unsupported) {
    t.skip(`needs TLS in the server ([tls] cert, key; client.same_origin): it says ${server.unsupported}`);
    return;
  }
  try {
    await caseHttps(t, { origin, ca: tls.ca });
  } finally {
    await server.stop();
  }
});
