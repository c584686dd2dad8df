// Voice in real Chromium: pages in separate browser contexts join one room through the real server
// and hear each other over WebRTC, through the server's relay. "Hear" is read from each page's
// `getStats()`: packets received on the track whose stream id is the other person's `stream`, and
// audio energy in them (Chromium's fake microphone beeps). Every step waits on a condition with a
// deadline; the only fixed wait is the measured window in which a muted voice must send nothing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { API_URL, dropConnection, expectHears, expectSilence, launch, person, poll, received, restoreConnection, screenshots, seeText, sent, until } from './lib.mjs';

async function createRoom(title, settings) {
  const res = await fetch(`${API_URL}/api/rooms`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ title, settings }),
  });
  assert.ok(res.ok, `${res.status} ${await res.clone().text()}`);
  return res.json();
}

/** Joins by the link (after a microphone check if `check`) and waits for the room. */
async function joinRoom(p, url, { check = false } = {}) {
  const page = p.page;
  await page.goto(url);
  await seeText(page, 'h1', 'Voice check');
  if (check) {
    await page.getByRole('button', { name: 'Check my microphone' }).click();
    await seeText(page, '#mic-status', 'did not allow the microphone');
  }
  await page.fill('#name', p.name);
  await page.getByRole('button', { name: 'Join muted' }).click();
  await page.locator('#people-title').waitFor();
}

async function unmute(p) {
  await p.page.getByRole('button', { name: 'Unmute' }).click();
  await until(p.page, `${p.name}'s mic to be on`, () => document.querySelector('[data-key="mic"]').textContent === 'Mute');
}

test('voice: two members hear each other; mute, a listener without a microphone, a resume, a reload, leaving', async (t) => {
  const browser = await launch();
  const everyone = [];
  let ana, ben, cy;
  let url;
  let broken = false;
  const step = (name, fn) =>
    t.test(name, broken ? { skip: 'an earlier step failed' } : {}, async () => {
      try {
        await fn();
      } catch (e) {
        broken = true;
        throw e;
      }
    });

  try {
    await step('two pages join one room, unmute, and each receives the other’s voice', async () => {
      const room = await createRoom('Voice check', { waiting_room: false, mute_on_entry: false });
      url = room.join_url;
      ana = await person(browser, 'Ana');
      ben = await person(browser, 'Ben');
      everyone.push(ana, ben);
      await Promise.all([joinRoom(ana, url), joinRoom(ben, url)]);
      const started = Date.now();
      await Promise.all([unmute(ana), unmute(ben)]);
      const [a, b] = await Promise.all([expectHears(ana, ben), expectHears(ben, ana)]);
      t.diagnostic(`both heard within ${Date.now() - started} ms of unmuting`);
      // The track is the one whose stream id the roster gives for that person.
      const benStream = await ben.page.evaluate(() => window.__circle.state.me.stream);
      assert.equal(a.stream, benStream);
      assert.equal(a.connection, 'connected');
      assert.equal(b.direction, 'sendrecv');
      for (const s of [a, b]) assert.ok(s.energy > 0, JSON.stringify(s));
      // Each person's voice plays in its own <audio> element.
      const players = await ana.page.evaluate(() =>
        [...document.querySelectorAll('.voice-players audio')].map((el) => ({ stream: el.dataset.stream, paused: el.paused })),
      );
      assert.deepEqual(players, [{ stream: benStream, paused: false }]);
      // The relay's active-speaker events light Ben's dot on Ana's page while his microphone beeps.
      await until(ana.page, 'Ben’s speaking dot', () =>
        [...document.querySelectorAll('.person.is-speaking .person-name')].some((e) => e.firstChild.textContent === 'Ben'),
      );
      // The dots are painted in place: while they come and go, the roster's elements stay the same
      // ones (a redraw would replace them under the pointer and lose a click on a menu).
      await ana.page.evaluate(() => {
        window.__rows = [...document.querySelectorAll('.roster .person')];
        window.__dotChanges = 0;
        new MutationObserver((records) => (window.__dotChanges += records.length)).observe(document.querySelector('.roster'), {
          attributes: true,
          attributeFilter: ['class'],
          subtree: true,
        });
      });
      await until(ana.page, 'the speaking dots to change a few times', () => window.__dotChanges >= 4);
      assert.ok(await ana.page.evaluate(() => window.__rows.every((el) => el.isConnected)), 'the roster was not redrawn');
      await screenshots(ana.page, 'room-voice');
    });

    await step('a listener whose browser refused the microphone joins listen-only and hears both', async () => {
      cy = await person(browser, 'Cy', { denyMic: true });
      everyone.push(cy);
      await joinRoom(cy, url, { check: true });
      const [fromAna] = await Promise.all([expectHears(cy, ana), expectHears(cy, ben)]);
      assert.equal(fromAna.direction, 'recvonly');
      // Unmuting cannot open a microphone: Cy is told, and stays a listener.
      await cy.page.getByRole('button', { name: 'Unmute' }).click();
      await seeText(cy.page, '.toast', 'blocked the microphone');
      assert.equal((await sent(cy)).packetsSent, 0);
      await expectHears(cy, ana, { after: await received(cy, 'Ana') });
    });

    await step('muting yourself stops sending; unmuting sends again', async () => {
      await ana.page.getByRole('button', { name: 'Mute' }).click();
      await until(ana.page, 'Ana muted', () => document.querySelector('[data-key="mic"]').textContent === 'Unmute');
      assert.equal((await sent(ana)).sending, false, 'the microphone track is off the connection');
      const before = await sent(ana);
      const quiet = await expectSilence(ben, ana);
      assert.equal((await sent(ana)).packetsSent, before.packetsSent, 'a muted page sends no audio');
      // Ben still hears nothing from Ana, but Ana still hears Ben.
      await expectHears(ana, ben, { after: await received(ana, 'Ben') });
      await unmute(ana);
      await expectHears(ben, ana, { after: quiet });
    });

    await step('a dropped websocket: after the resume, a fresh voice connection, and voices flow both ways', async () => {
      const before = await received(ben, 'Ana');
      const anaBefore = await received(ana, 'Ben');
      await dropConnection(ben.page);
      await seeText(ben.page, '.connection', 'Reconnecting…');
      const started = Date.now();
      await restoreConnection(ben.page);
      await ben.page.locator('.connection.is-reconnecting').waitFor({ state: 'detached' });
      const after = await expectHears(ben, ana, { generation: before.generation + 1, after: before });
      assert.ok(after.generation > before.generation, 'the resume starts a new voice connection');
      t.diagnostic(`Ben hears Ana ${Date.now() - started} ms after his network came back`);
      await expectHears(ana, ben, { after: anaBefore });
      t.diagnostic(`voice back both ways ${Date.now() - started} ms after Ben's network came back`);
      await expectHears(cy, ben, { after: await received(cy, 'Ben') });
    });

    await step('a reload while unmuted comes back unmuted: the microphone reopens and is heard again', async () => {
      const before = await received(ben, 'Ana');
      await ana.page.reload();
      await ana.page.locator('#people-title').waitFor();
      await until(ana.page, 'Ana still unmuted', () => document.querySelector('[data-key="mic"]')?.textContent === 'Mute');
      await expectHears(ben, ana, { after: before });
      assert.equal((await sent(ana)).sending, true);
      // And Ana hears Ben: this Chromium lets the reloaded page play without a new click.
      await expectHears(ana, ben);
      assert.deepEqual(await ana.page.evaluate(() => [...document.querySelectorAll('.voice-players audio')].map((el) => el.paused)), [false, false]);
    });

    await step('leaving closes the voice connection, and the others stop playing that voice', async () => {
      const benStream = (await received(ana, 'Ben')).stream;
      await ben.page.getByRole('button', { name: 'Leave' }).click();
      await ben.page.getByRole('dialog').getByRole('button', { name: 'Leave' }).click();
      await seeText(ben.page, 'h1', 'You left the meeting');
      assert.deepEqual(
        await ben.page.evaluate(() => ({ pc: window.__circle.media.pc, players: document.querySelectorAll('.voice-players audio').length })),
        { pc: null, players: 0 },
      );
      for (const p of [ana, cy]) {
        await poll(
          `${p.name} to stop playing Ben`,
          () => p.page.evaluate(() => [...document.querySelectorAll('.voice-players audio')].map((el) => el.dataset.stream)),
          (streams) => !streams.includes(benStream),
        );
      }
      await expectHears(cy, ana, { after: await received(cy, 'Ana') });
    });

    await step('no page logged an error', async () => {
      assert.deepEqual(everyone.flatMap((p) => p.errors), []);
    });
  } finally {
    await browser.close();
  }
});
