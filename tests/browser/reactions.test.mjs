// Silent reactions and connection quality, in real Chromium against the real server.
//
// Reactions: a member's "Thank you" shows next to their name for the others (and is announced),
// never reaches the waiting room, stops when the facilitator turns the setting off (the bar goes and
// the server refuses), and the rate limit answers kindly; no animation under reduced motion.
//
// Connection quality: every person sees their own level by their controls; the facilitator sees a
// struggling member's level on that person's row; another member sees no one's.
//
// How the struggling connection is made: Chromium has no packet-loss emulation for WebRTC's UDP, so
// Sam's page alone gets a `getStats()` that adds the server's report of heavy loss on his outgoing
// voice (a `remote-inbound-rtp` with fractionLost 0.2), installed with `addInitScript` before the page
// loads. That simulates the network at the browser's API boundary; everything after it is real: the
// client's classification, its `connection_quality` request, the server's routing to facilitators
// only, and the facilitator's page.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { announced, axe, createRoom, launch, person, row, screenshots, seeText, until } from './lib.mjs';
import { THRESHOLDS, classify } from '../../web-client/quality.js';
import { Part, RoomState } from '../../web-client/state.js';

/** Records the type of every message the page's websockets receive, in `window.__received`. */
async function recordReceived(p) {
  await p.context.addInitScript(() => {
    window.__received = [];
    const Wrapped = window.WebSocket;
    window.WebSocket = class extends Wrapped {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (ev) => {
          try {
            window.__received.push(JSON.parse(ev.data).type);
          } catch {
            // not JSON: not ours to count
          }
        });
      }
    };
  });
}

/** Makes this person's voice connection report heavy loss (see the file's comment). */
async function lossyConnection(p) {
  await p.context.addInitScript(() => {
    const native = RTCPeerConnection.prototype.getStats;
    RTCPeerConnection.prototype.getStats = async function (...args) {
      const report = await native.apply(this, args);
      if (args.length) return report;
      const lossy = new Map(report);
      lossy.set('test-loss', { id: 'test-loss', type: 'remote-inbound-rtp', kind: 'audio', fractionLost: 0.2, roundTripTime: 0.05, jitter: 0.01 });
      return lossy;
    };
  });
}

async function enter(p, url, title) {
  await p.page.goto(url);
  await seeText(p.page, 'h1', title);
  await p.page.fill('#name', p.name);
  await p.page.keyboard.press('Enter');
}

test('the connection levels follow the stated thresholds, the worst figure deciding', () => {
  assert.equal(classify({ loss: 0, jitter: 0.005, rtt: 0.04 }), 'good');
  assert.equal(classify({ loss: null, jitter: null, rtt: null }), 'good', 'nothing measured yet is not a problem');
  assert.equal(classify({ loss: THRESHOLDS.fair.loss, jitter: 0, rtt: 0 }), 'fair');
  assert.equal(classify({ loss: 0, jitter: THRESHOLDS.fair.jitter, rtt: 0 }), 'fair');
  assert.equal(classify({ loss: 0, jitter: 0, rtt: THRESHOLDS.fair.rtt }), 'fair');
  assert.equal(classify({ loss: 0.01, jitter: 0.01, rtt: THRESHOLDS.poor.rtt }), 'poor');
  assert.equal(classify({ loss: THRESHOLDS.poor.loss, jitter: 0, rtt: 0 }), 'poor');
  assert.equal(classify({ loss: 0, jitter: THRESHOLDS.poor.jitter, rtt: 0 }), 'poor');
});

test('a facilitator’s model keeps the levels that are not good: from the snapshot, the events, until they leave', () => {
  const s = new RoomState();
  const member = (id, name) => ({ id, name, role: 'member', presence: 'online', hand_raised_at: null, self_muted: true, muted_by_facilitator: false, chat_allowed: true });
  s.apply({
    type: 'joined',
    you: 'f',
    role: 'facilitator',
    waiting: false,
    room: {
      title: 'Circle',
      settings: { reactions: true },
      participants: [{ ...member('f', 'Maya'), role: 'facilitator' }, member('a', 'Sam'), member('b', 'Kim')],
      counts: { members: 2, facilitators: 1, waiting: 0 },
      floor: { speaker: null, queue: [] },
      chat: [],
      connection_quality: [{ participant: 'a', level: 'poor' }],
    },
  });
  assert.deepEqual([...s.connection], [['a', 'poor']]);
  const r = s.apply({ type: 'connection_quality', participant: 'b', level: 'fair' });
  assert.ok(r.changed.has(Part.PEOPLE));
  assert.deepEqual(r.announce, [], 'nothing is read out');
  s.apply({ type: 'connection_quality', participant: 'a', level: 'good' });
  assert.deepEqual([...s.connection], [['b', 'fair']]);
  s.apply({ type: 'participant_left', participant: 'b', reason: 'left' });
  assert.equal(s.connection.size, 0);
});

const received = (p, type) => p.page.evaluate((type) => window.__received.filter((t) => t === type).length, type);

test('reactions next to names, never in the waiting room, off by a setting, kindly limited; connection quality for oneself and for facilitators only', async (t) => {
  const room = await createRoom('Thursday circle', { waiting_room: false });
  const browser = await launch();
  let dana, sam, kim, robin;
  try {
    dana = await person(browser, 'Dana');
    sam = await person(browser, 'Sam');
    kim = await person(browser, 'Kim');
    robin = await person(browser, 'Robin');
    for (const p of [dana, sam, kim, robin]) await recordReceived(p);
    await lossyConnection(sam);
    await enter(dana, room.facilitator_url, 'Thursday circle');
    await seeText(dana.page, '#room-title', 'Thursday circle');
    for (const p of [sam, kim]) {
      await enter(p, room.join_url, 'Thursday circle');
      await seeText(p.page, '#room-title', 'Thursday circle');
    }

    await t.test('each person sees their own connection level, in words', async () => {
      await seeText(sam.page, '.quality[data-level="poor"] summary', 'Connection: poor');
      await seeText(kim.page, '.quality[data-level="good"] summary', 'Connection: good');
      // Opened, it says what it is based on and who learns it.
      await sam.page.locator('.quality summary').click();
      await seeText(sam.page, '.quality', 'of the sound lost');
      await seeText(sam.page, '.quality', 'only with the facilitators');
      await axe(sam.page, 'a member’s room with a poor connection');
    });

    await t.test('the facilitator sees who is struggling; another member does not', async () => {
      await row(dana.page, 'Sam').locator('.badge-connection', { hasText: 'Poor connection' }).waitFor();
      assert.equal(await row(dana.page, 'Kim').locator('.badge-connection').count(), 0, 'Kim is fine');
      // Kim's page got nothing about anyone's connection, and shows nothing (a request of Kim's,
      // answered after Sam's report reached everyone it was going to, proves nothing is on its way).
      await kim.page.evaluate(() => window.__circle.media.session.request('lower_hand'));
      assert.equal(await received(kim, 'connection_quality'), 0);
      assert.equal(await kim.page.locator('.badge-connection').count(), 0);
      assert.equal(await received(sam, 'connection_quality'), 0, 'not even his own level comes back');
    });

    await t.test('a reaction shows next to the name for the others, and is announced', async () => {
      await dana.page.emulateMedia({ reducedMotion: 'reduce' });
      await kim.page.getByRole('button', { name: 'Thank you', exact: true }).click();
      const onDana = row(dana.page, 'Kim').locator('.badge-reaction', { hasText: 'Thank you' });
      const onSam = row(sam.page, 'Kim').locator('.badge-reaction', { hasText: 'Thank you' });
      await onDana.waitFor();
      await onSam.waitFor();
      await row(kim.page, 'Kim').locator('.badge-reaction', { hasText: 'Thank you' }).waitFor();
      assert.equal(await onDana.evaluate((el) => getComputedStyle(el).animationName), 'none', 'no motion under reduced motion');
      assert.notEqual(await onSam.evaluate((el) => getComputedStyle(el).animationName), 'none');
      await announced(sam.page, 'Kim: Thank you');
      await screenshots(dana.page, 'room-reactions-facilitator');
    });

    await t.test('the waiting room never sees a reaction', async () => {
      await dana.page.locator('#set-waiting').check();
      await enter(robin, room.join_url, 'Thursday circle');
      await dana.page.locator('.waiting-list, #waiting-title').first().waitFor();
      await kim.page.getByRole('button', { name: 'Heart', exact: true }).click();
      await row(dana.page, 'Kim').locator('.badge-reaction', { hasText: 'Heart' }).waitFor();
      await robin.page.evaluate(() => window.__circle.media.session.request('leave').catch(() => {}));
      assert.ok((await robin.page.evaluate(() => window.__received.length)) > 0, 'Robin’s page did hear from the server');
      assert.equal(await received(robin, 'reaction'), 0);
    });

    await t.test('too many at once gets a kind word, not an error', async () => {
      const heart = kim.page.getByRole('button', { name: 'Heart', exact: true });
      for (let i = 0; i < 8; i++) await heart.click();
      await seeText(kim.page, '.toast', 'Thank you for your warmth. Please wait a moment before the next reaction.');
    });

    await t.test('the facilitator turns reactions off: the bar goes, and the server refuses', async () => {
      await dana.page.locator('#set-reactions').uncheck();
      await until(kim.page, 'the reaction bar to go', () => !document.querySelector('.reaction-bar'));
      await until(dana.page, 'the reaction bar to go', () => !document.querySelector('.reaction-bar'));
      const refused = await kim.page.evaluate(() =>
        window.__circle.media.session.request('react', { reaction: 'heart' }).then(
          () => 'sent',
          (e) => e.code,
        ),
      );
      assert.equal(refused, 'reactions_disabled');
      await axe(kim.page, 'a member’s room with reactions off');
      await dana.page.locator('#set-reactions').check();
      await kim.page.locator('.reaction-bar').waitFor();
    });

    assert.deepEqual([...dana.errors, ...sam.errors, ...kim.errors, ...robin.errors], []);
  } finally {
    await browser.close();
  }
});
