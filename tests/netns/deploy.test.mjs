// The deployment kit as docs/DEPLOY.md sets it up, with today's server: Circle on loopback behind
// nginx running deploy/nginx.conf (HTTPS with a test CA, one origin), and coturn running
// deploy/turnserver.conf as the TURN relay over TLS. The same cases as Circle's own TLS and TURN
// (cases.mjs): (d) the page, API and websocket over HTTPS; (c) a member allowed only TCP to 443 and
// 5349 heard through TURN over TLS; the relay refusing every address but Circle's voice port. Only the
// names, the certificate paths, the log path and the secret are changed from the shipped files.

import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { caseHttps, caseTurnRefuses, caseTurnTls } from './cases.mjs';
import { MEDIA_PORT, ROOT, SERVER_IP, TURN_TLS_PORT, WORK, daemonIn, startServer, tcpOpen, testCa } from './lib.mjs';

const NAME = process.env.NETNS_SERVER_NAME;
const ORIGIN = `https://${NAME}`;
const shipped = (file) => readFileSync(join(ROOT, 'deploy', file), 'utf8');

let tls;
const running = [];

before(async () => {
  tls = await testCa(NAME);
  const secret = randomBytes(24).toString('hex');

  // nginx: deploy/nginx.conf inside a minimal main configuration (no access log, files in the run's
  // work directory).
  const site = shipped('nginx.conf')
    .replaceAll('meet.example.org', NAME)
    .replaceAll(`/etc/letsencrypt/live/${NAME}/fullchain.pem`, tls.cert)
    .replaceAll(`/etc/letsencrypt/live/${NAME}/privkey.pem`, tls.key)
    .replaceAll('/var/log/nginx/circle-error.log', join(WORK, 'nginx-error.log'));
  writeFileSync(join(WORK, 'nginx-site.conf'), site);
  writeFileSync(join(WORK, 'nginx.conf'), [
    'user www-data;',
    `pid ${join(WORK, 'nginx.pid')};`,
    `error_log ${join(WORK, 'nginx-main-error.log')};`,
    'events {}',
    `http { include /etc/nginx/mime.types; access_log off; include ${join(WORK, 'nginx-site.conf')}; }`,
    '',
  ].join('\n'));
  const nginx = daemonIn('srv', 'nginx', 'nginx', ['-c', join(WORK, 'nginx.conf'), '-g', 'daemon off;']);
  running.push(nginx);
  await tcpOpen('nginx on 443', SERVER_IP, 443, nginx);

  // coturn: deploy/turnserver.conf (its public address is already the test server's, 203.0.113.10).
  const turnConf = shipped('turnserver.conf')
    .replaceAll('meet.example.org', NAME)
    .replaceAll('/etc/turnserver/fullchain.pem', tls.cert)
    .replaceAll('/etc/turnserver/privkey.pem', tls.key)
    .replaceAll('A-LONG-RANDOM-SECRET', secret);
  if (!turnConf.includes(`listening-ip=${SERVER_IP}`)) throw new Error(`deploy/turnserver.conf no longer listens on ${SERVER_IP}`);
  writeFileSync(join(WORK, 'turnserver.conf'), turnConf);
  const coturn = daemonIn('srv', 'coturn', 'turnserver', [
    '-c', join(WORK, 'turnserver.conf'),
    '--log-file', 'stdout', '--simple-log',
    '--pidfile', join(WORK, 'turnserver.pid'),
    '--db', join(WORK, 'turndb.sqlite'),
  ]);
  running.push(coturn);
  await tcpOpen('coturn on 5349', SERVER_IP, TURN_TLS_PORT, coturn);

  // Circle as docs/DEPLOY.md sections 4 and 8 configure it behind a proxy, with coturn as its TURN.
  const server = await startServer('behind-nginx', {
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
    // coturn checks the credentials Circle makes for each member (use-auth-secret).
    CIRCLE_TURN__SECRET: secret,
    CIRCLE_TURN__URLS: `["turns:${NAME}:${TURN_TLS_PORT}?transport=tcp"]`,
  }, { health: `${ORIGIN}/healthz`, curlArgs: ['--cacert', tls.ca] });
  if (server.unsupported) throw new Error(`today's configuration keys were refused: ${server.unsupported}`);
  running.push(server);
});

after(async () => {
  await Promise.all(running.map((d) => d.stop()));
});

test('(d) behind deploy/nginx.conf: page, API and websocket over HTTPS with a test CA; voice both ways', (t) =>
  caseHttps(t, { origin: ORIGIN, ca: tls.ca }));

test('(c) only TCP to 443 and 5349: voice through coturn (deploy/turnserver.conf) over TLS, both ways', (t) =>
  caseTurnTls(t, { origin: ORIGIN, ca: tls.ca, turnPort: TURN_TLS_PORT }));

test('coturn as deploy/turnserver.conf sets it up relays only to Circle’s voice port', (t) =>
  caseTurnRefuses(t, { origin: ORIGIN, ca: tls.ca, turnPort: TURN_TLS_PORT }));
