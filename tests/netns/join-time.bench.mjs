// Benchmark (not part of `make test`): join time over each network path, in real Chromium in the
// namespaces. A speaker on the open internet talks in a room; a listener joins from a network that
// allows (a) UDP behind NAT, (b) only TCP (UDP dropped: ICE-TCP), (c) only TCP to 443 and 5349
// (TURN over TLS). Measured in the listener's page: from its websocket opening to the first audio
// packet received from the speaker (`inbound-rtp.packetsReceived` > 0, polled every 5 ms). Each run
// also checks that the selected candidate pair is the path it is meant to measure.
//
//   JOIN_RUNS=10 tests/netns/run.sh join-time.bench.mjs     (default 5 runs per path)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MEDIA_PORT, TURN_TLS_PORT, SERVER_IP, browserIn, createRoom, expectSelectedPair, joinRoom, person,
  startServer, testCa, tlsConfig, trustingHome, unmute,
} from './lib.mjs';

const RUNS = Number(process.env.JOIN_RUNS ?? 5);

// Each path gets a server offering it (and, for ICE-TCP, not TURN, which the browser would
// otherwise be free to pick instead).
const ICE_TCP = { CIRCLE_MEDIA__TCP_LISTEN: `0.0.0.0:${MEDIA_PORT}` };
const TURN = {
  CIRCLE_TURN__TLS: `${SERVER_IP}:${TURN_TLS_PORT}`,
  CIRCLE_TURN__SECRET: 'netns benchmark secret, shared with nobody',
};
const PATHS = [
  { role: 'home', what: 'UDP behind NAT', config: {}, expect: (p) => p.remote.protocol === 'udp' && p.local.type !== 'relay' },
  { role: 'office', what: 'ICE-TCP (UDP dropped)', config: ICE_TCP, expect: (p) => p.remote.protocol === 'tcp' },
  { role: 'locked', what: 'TURN over TLS (only TCP 443 and 5349)', config: TURN, expect: (p) => p.local.type === 'relay' && p.local.relayProtocol === 'tls' },
];

/** A person in `role`'s namespace trusting the test CA, the page using the config.js it is served. */
async function trusting(role, name, ca, browsers) {
  const browser = await browserIn(role, { home: await trustingHome(ca) });
  browsers.push(browser);
  const p = await person(browser, name);
  await p.context.unroute('**/config.js');
  // When the page's first websocket opens: the start of the measured interval.
  await p.context.addInitScript(() => {
    const Inner = window.WebSocket;
    window.WebSocket = class extends Inner {
      constructor(...args) {
        super(...args);
        this.addEventListener('open', () => {
          window.__wsOpenAt ??= performance.now();
        });
      }
    };
  });
  return p;
}

/** Milliseconds from the page's websocket opening to its first received audio packet. */
function firstAudio(p) {
  return p.page.evaluate(async () => {
    const deadline = performance.now() + 30_000;
    while (performance.now() < deadline) {
      const pc = window.__circle?.media?.pc;
      if (pc && window.__wsOpenAt !== undefined) {
        for (const s of (await pc.getStats()).values()) {
          if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.packetsReceived > 0) {
            return performance.now() - window.__wsOpenAt;
          }
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return null;
  });
}

const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

test(`join time over UDP, ICE-TCP and TURN/TLS (${RUNS} runs each)`, { timeout: 600_000 }, async (t) => {
  const tls = await testCa(process.env.NETNS_SERVER_NAME);
  for (const path of PATHS) {
    const config = { ...tlsConfig(tls), ...path.config };
    const origin = config.CIRCLE_SERVER__PUBLIC_URL;
    const server = await startServer(`join-${path.role}`, config, { health: `${origin}/healthz`, curlArgs: ['--cacert', tls.ca] });
    assert.ok(!server.unsupported, `the server refused the configuration: ${server.unsupported}`);
    const browsers = [];
    try {
      const room = await createRoom(origin, 'Network check', ['--cacert', tls.ca]);
      // The speaker: on the open internet, unmuted for the whole run (the room lets members speak).
      const ben = await trusting('pub', 'Ben', tls.ca, browsers);
      await joinRoom(ben, room.join_url);
      await unmute(ben);
      const times = [];
      for (let i = 0; i < RUNS; i++) {
        const listener = await trusting(path.role, `${path.role} ${i + 1}`, tls.ca, browsers);
        await joinRoom(listener, room.join_url);
        const ms = await firstAudio(listener);
        assert.ok(ms !== null, `${path.what}: no audio within 30 s`);
        const pair = await expectSelectedPair(listener);
        assert.ok(path.expect(pair), `${path.what}: the selected pair was ${JSON.stringify(pair)}`);
        times.push(ms);
        const browser = browsers.pop();
        await browser.close();
      }
      const sorted = [...times].sort((a, b) => a - b);
      t.diagnostic(
        `${path.what}: p50 ${pct(sorted, 0.5).toFixed(0)} ms, p90 ${pct(sorted, 0.9).toFixed(0)} ms, ` +
          `min ${sorted[0].toFixed(0)} ms, max ${sorted.at(-1).toFixed(0)} ms over ${RUNS} runs`,
      );
    } finally {
      await Promise.all(browsers.map((b) => b.close()));
      await server.stop();
    }
  }
});
