// The deployment kit's other proxy: Circle on loopback behind Caddy running deploy/Caddyfile, with a
// certificate from the test CA instead of Let's Encrypt (a `tls` line is added to the site, and the
// admin endpoint turned off; nothing else changes). The (d) case of cases.mjs: the page, the API and
// the websocket over HTTPS on one origin, and voice both ways.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { caseHttps } from './cases.mjs';
import { MEDIA_PORT, ROOT, SERVER_IP, WORK, daemonIn, startServer, tcpOpen, testCa } from './lib.mjs';

const NAME = process.env.NETNS_SERVER_NAME;
const ORIGIN = `https://${NAME}`;

let tls;
const running = [];

before(async () => {
  tls = await testCa(NAME);
  const site = readFileSync(join(ROOT, 'deploy', 'Caddyfile'), 'utf8').replaceAll('meet.example.org', NAME);
  const opening = `${NAME} {\n`;
  if (!site.includes(opening)) throw new Error(`deploy/Caddyfile has no site block "${NAME} {"`);
  const conf = `{\n\tadmin off\n}\n\n${site.replace(opening, `${opening}\ttls ${tls.cert} ${tls.key}\n`)}`;
  writeFileSync(join(WORK, 'Caddyfile'), conf);
  // Caddy keeps its state under XDG_DATA_HOME / XDG_CONFIG_HOME: the run's work directory.
  const caddy = daemonIn('srv', 'caddy', 'env', [
    `HOME=${WORK}`, `XDG_DATA_HOME=${join(WORK, 'caddy-data')}`, `XDG_CONFIG_HOME=${join(WORK, 'caddy-config')}`,
    'caddy', 'run', '--config', join(WORK, 'Caddyfile'), '--adapter', 'caddyfile',
  ]);
  running.push(caddy);
  await tcpOpen('Caddy on 443', SERVER_IP, 443, caddy);

  const server = await startServer('behind-caddy', {
    CIRCLE_SERVER__LISTEN: '127.0.0.1:7700',
    CIRCLE_SERVER__PUBLIC_URL: ORIGIN,
    CIRCLE_CLIENT__URL: ORIGIN,
    CIRCLE_CLIENT__SERVE_DIR: join(ROOT, 'web-client'),
    CIRCLE_CLIENT__LISTEN: '127.0.0.1:8080',
    CIRCLE_MEDIA__LISTEN: `0.0.0.0:${MEDIA_PORT}`,
    // One relay worker, on MEDIA_PORT: the cases check the exact port a browser reaches (with
    // several, a room lands on one of MEDIA_PORT…+n; crates/circle-media/tests/workers.rs covers them).
    CIRCLE_MEDIA__WORKERS: '1',
    CIRCLE_MEDIA__ADVERTISED_IP: SERVER_IP,
  }, { health: `${ORIGIN}/healthz`, curlArgs: ['--cacert', tls.ca] });
  if (server.unsupported) throw new Error(`today's configuration keys were refused: ${server.unsupported}`);
  running.push(server);
});

after(async () => {
  await Promise.all(running.map((d) => d.stop()));
});

test('(d) behind deploy/Caddyfile: page, API and websocket over HTTPS with a test CA; voice both ways', (t) =>
  caseHttps(t, { origin: ORIGIN, ca: tls.ca }));
