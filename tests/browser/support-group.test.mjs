// The web client as a real support group uses it (issue #10): one test per finding, each in its own
// meeting made through the API, each waiting on what a person would see. axe-core checks every
// screen a test visits.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  PHONE,
  axe,
  createRoom,
  dropConnection,
  expectQueue,
  holdServer,
  launch,
  person,
  personAction,
  poll,
  restoreConnection,
  row,
  received,
  screenshots,
  sent,
  seeText,
  until,
} from './lib.mjs';

const SUPPORT = { SUPPORT_TEXT: 'Need to talk now? The helpline is open day and night.', SUPPORT_URL: 'https://support.example.org/help' };

/** Opens `url`, joins as `p.name`, and waits for the room (or the waiting room). */
async function enter(p, url, { waiting = false } = {}) {
  await p.page.goto(url);
  await p.page.locator('#name').waitFor();
  await p.page.fill('#name', p.name);
  await p.page.getByRole('button', { name: 'Join muted' }).click();
  if (waiting) await seeText(p.page, 'h1', 'The facilitator will let you in soon');
  else await p.page.locator('#room-title').waitFor();
}

/** The visible text of the page (not the screen readers' announcer). */
function mainText(page) {
  return page.evaluate(() => document.getElementById('main')?.innerText ?? '');
}

function noErrors(...people) {
  assert.deepEqual(people.flatMap((p) => p.errors), []);
}

test('finding 9: the network comes back while a reconnect attempt is in flight, and the page tries again at once', async () => {
  const room = await createRoom('Reconnect circle', { waiting_room: false });
  const browser = await launch();
  const hold = await holdServer();
  try {
    const sam = await person(browser, 'Sam', { holdable: true });
    await enter(sam, room.join_url);
    const page = sam.page;
    // The connection drops, and the next attempt hangs, as on a network that is not back yet.
    await page.evaluate((url) => {
      window.__holdSockets = url;
      window.__sockets.at(-1).close();
    }, hold.url);
    await seeText(page, '.connection', 'Reconnecting…');
    await poll('a reconnect attempt in flight', () => hold.accepted, (n) => n >= 1, 30_000);
    // The browser says the network is back while that attempt is still in flight...
    await page.evaluate(() => {
      window.__holdSockets = null;
      window.dispatchEvent(new Event('online'));
    });
    // ...and then the attempt fails: the page must try again at once, not after a backoff.
    hold.failAll();
    await until(
      page,
      'the held attempt to close',
      (url) => window.__sockets.filter((s) => s.url === url).at(-1)?.nextOpenedAtOnce !== undefined,
      hold.url,
      30_000,
    );
    const atOnce = await page.evaluate((url) => window.__sockets.filter((s) => s.url === url).at(-1).nextOpenedAtOnce, hold.url);
    assert.equal(atOnce, true, 'after the "online" event, a failed attempt is followed by the next one at once');
    await page.locator('.connection.is-reconnecting').waitFor({ state: 'detached', timeout: 30_000 });
    await seeText(page, '#people-title', 'People here (1)');
    noErrors(sam);
  } finally {
    await hold.close();
    await browser.close();
  }
});

test('finding 9: an attempt the browser blocks outright (an error and no close) does not stall reconnection', async () => {
  const room = await createRoom('Blocked circle', { waiting_room: false });
  const browser = await launch();
  try {
    const sam = await person(browser, 'Sam');
    await enter(sam, room.join_url);
    const page = sam.page;
    await dropConnection(page);
    await seeText(page, '.connection', 'Reconnecting…');
    // Wait until an attempt has been made and blocked, then bring the network back.
    await until(page, 'a blocked attempt', () => window.__sockets.some((s) => s.url === 'ws://127.0.0.1:1/'), undefined, 30_000);
    await restoreConnection(page);
    await page.locator('.connection.is-reconnecting').waitFor({ state: 'detached', timeout: 30_000 });
    await seeText(page, '#people-title', 'People here (1)');
  } finally {
    await browser.close();
  }
});

test('finding 1: arriving muted by the room’s rule reads as waiting for a turn; a facilitator’s mute reads as one', async () => {
  const room = await createRoom('Arrival circle'); // waiting room and "new members need permission to unmute"
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const river = await person(browser, 'River');
    await enter(dana, room.facilitator_url);
    await enter(river, room.join_url, { waiting: true });
    await axe(river.page, 'the waiting room');
    await dana.page.getByRole('button', { name: 'Admit River' }).click();
    await river.page.locator('#room-title').waitFor();

    for (const p of [dana, river]) {
      const badges = row(p.page, 'River').locator('.badges');
      await seeText(p.page, '.person .badges', 'Waiting for a turn');
      assert.doesNotMatch(await badges.innerText(), /Muted by facilitator/);
      assert.equal(await row(p.page, 'River').locator('.badge-caution').count(), 0, 'arriving is not a sanction');
    }
    await seeText(river.page, '#mic-note', 'turn to speak');
    assert.doesNotMatch(await river.page.innerText('#mic-note'), /A facilitator has muted you/);
    assert.doesNotMatch(await river.page.innerText('#announcer'), /muted you/);
    await axe(river.page, 'the room, as a member who just arrived');
    await screenshots(river.page, 'arrived-waiting-for-turn');

    // An actual facilitator mute keeps the sanction's words.
    await personAction(dana.page, 'River', 'Allow to speak');
    await until(river.page, 'Unmute to be enabled', () => !document.querySelector('[data-key="mic"]').disabled);
    await personAction(dana.page, 'River', 'Mute');
    for (const p of [dana, river]) await row(p.page, 'River').locator('.badge-caution', { hasText: 'Muted by facilitator' }).waitFor();
    await seeText(river.page, '#mic-note', 'A facilitator has muted you');
    noErrors(dana, river);
  } finally {
    await browser.close();
  }
});

test('finding 2: a floor holder muted by a facilitator, or whose time is up, gets one instruction', async () => {
  const room = await createRoom('Floor circle', { waiting_room: false, share_secs: 6, share_warning_secs: 0 });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const river = await person(browser, 'River');
    await enter(dana, room.facilitator_url);
    await enter(river, room.join_url);
    await personAction(dana.page, 'River', 'Give the floor');
    await seeText(river.page, '.floor-label', 'You have the floor');
    await personAction(dana.page, 'River', 'Mute');
    await until(river.page, 'Unmute to be disabled', () => document.querySelector('[data-key="mic"]').disabled);
    await seeText(river.page, '#mic-note', 'A facilitator has muted you');
    assert.doesNotMatch(await mainText(river.page), /Unmute when you are ready/, 'no "unmute" next to a disabled Unmute');

    await personAction(dana.page, 'River', 'Allow to speak');
    await until(river.page, 'Unmute to be enabled', () => !document.querySelector('[data-key="mic"]').disabled);
    await seeText(river.page, '.timer.is-expired', 'Time is up', 30_000);
    const text = await mainText(river.page);
    assert.doesNotMatch(text, /Unmute when you are ready/, 'no "unmute" once the time is up');
    assert.match(await river.page.innerText('.floor-card'), /Please bring your share to a close/);
    await axe(river.page, 'the room, as a floor holder whose time is up');
    await screenshots(river.page, 'floor-time-up');
    noErrors(dana, river);
  } finally {
    await browser.close();
  }
});

test('finding 5: the removed, denied and ended screens give a next step and the organisation’s support line', async () => {
  const room = await createRoom('Support circle');
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana', { config: SUPPORT });
    const river = await person(browser, 'River', { config: SUPPORT });
    const kim = await person(browser, 'Kim', { config: SUPPORT });
    await enter(dana, room.facilitator_url);
    await enter(river, room.join_url, { waiting: true });
    await dana.page.getByRole('button', { name: 'Admit River' }).click();
    await river.page.locator('#room-title').waitFor();

    const supportShown = async (page) => {
      const link = page.getByRole('link', { name: SUPPORT.SUPPORT_TEXT });
      await link.waitFor();
      assert.equal(await link.getAttribute('href'), SUPPORT.SUPPORT_URL);
    };

    await personAction(dana.page, 'River', 'Remove from meeting…');
    await dana.page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await seeText(river.page, 'h1', 'You are no longer in this meeting');
    await supportShown(river.page);
    await axe(river.page, 'the removed screen');
    await screenshots(river.page, 'removed');
    await river.page.getByRole('button', { name: 'Ask to join again' }).click();
    await river.page.locator('#name').waitFor();

    await enter(kim, room.join_url, { waiting: true });
    await dana.page.getByRole('button', { name: 'Deny Kim' }).click();
    await seeText(kim.page, 'h1', 'You were not let in');
    await supportShown(kim.page);
    await axe(kim.page, 'the denied screen');

    await dana.page.locator('[data-key="end-meeting"]').click();
    await dana.page.getByRole('dialog').getByRole('button', { name: 'End the meeting' }).click();
    await seeText(dana.page, 'h1', 'The meeting has ended');
    await supportShown(dana.page);
    await axe(dana.page, 'the ended screen');
    await screenshots(dana.page, 'ended-support');
    noErrors(dana, river, kim);
  } finally {
    await browser.close();
  }
});

test('finding 6: the microphone indicator tells the truth when one-speaker mode keeps a member from being heard', async () => {
  const room = await createRoom('One speaker circle', { waiting_room: false, mute_on_entry: false, one_speaker: true });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const river = await person(browser, 'River');
    await enter(dana, room.facilitator_url);
    await enter(river, room.join_url);
    await river.page.getByRole('button', { name: 'Unmute' }).click();
    await until(river.page, 'the mic to be on', () => document.querySelector('[data-key="mic"]').textContent === 'Mute');
    for (const p of [dana, river]) {
      await row(p.page, 'River').locator('.badge', { hasText: 'Not heard now' }).waitFor();
      assert.equal(await row(p.page, 'River').locator('.badge', { hasText: /^Mic on$/ }).count(), 0);
    }
    await axe(river.page, 'the room in one-speaker mode');
    await screenshots(river.page, 'one-speaker-not-heard');
    await personAction(dana.page, 'River', 'Give the floor');
    for (const p of [dana, river]) await row(p.page, 'River').locator('.badge', { hasText: /^Mic on$/ }).waitFor();
    noErrors(dana, river);
  } finally {
    await browser.close();
  }
});

test('finding 7: on a phone, Leave asks first, and coming back keeps the name', async () => {
  const room = await createRoom('Phone circle', { waiting_room: false });
  const browser = await launch();
  try {
    const river = await person(browser, 'River', { viewport: PHONE });
    await enter(river, room.join_url);
    const page = river.page;
    await page.getByRole('button', { name: 'Leave' }).click();
    const dialog = page.getByRole('dialog');
    await seeText(page, '#confirm-title', 'Leave the meeting?');
    await axe(page, 'the leave dialog');
    await dialog.getByRole('button', { name: 'Stay' }).click();
    await page.locator('#room-title').waitFor();
    assert.equal(await page.locator('dialog[open]').count(), 0);
    await page.getByRole('button', { name: 'Leave' }).click();
    await dialog.getByRole('button', { name: 'Leave' }).click();
    await seeText(page, 'h1', 'You left the meeting');
    await page.getByRole('button', { name: 'Rejoin the meeting' }).click();
    await page.locator('#name').waitFor();
    assert.equal(await page.inputValue('#name'), 'River');
    await axe(page, 'the join page, coming back');
    noErrors(river);
  } finally {
    await browser.close();
  }
});

test('finding 8: keyboard focus stays put after Admit, Next speaker and an arrival; names match the labels', async () => {
  const room = await createRoom('Focus circle', { mute_on_entry: false });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const river = await person(browser, 'River');
    const sam = await person(browser, 'Sam');
    const kim = await person(browser, 'Kim');
    await enter(dana, room.facilitator_url);
    await enter(river, room.join_url, { waiting: true });
    await enter(sam, room.join_url, { waiting: true });
    const page = dana.page;
    const focused = () => page.evaluate(() => (document.activeElement === document.body ? 'body' : document.activeElement.outerHTML.slice(0, 100)));

    await seeText(page, '#waiting-title', 'Waiting room (2)');
    await page.getByRole('button', { name: 'Admit River' }).focus();
    await page.keyboard.press('Enter');
    await river.page.locator('#room-title').waitFor();
    await seeText(page, '#waiting-title', 'Waiting room (1)');
    assert.notEqual(await focused(), 'body', 'focus after Admit');
    await page.getByRole('button', { name: 'Admit Sam' }).focus();
    await page.keyboard.press('Enter');
    await seeText(page, '#waiting-title', 'Waiting room (0)');
    assert.notEqual(await focused(), 'body', 'focus after admitting the last one');

    // A new arrival redraws the header while focus is on the title.
    await page.locator('#room-title').focus();
    await enter(kim, room.join_url, { waiting: true });
    await seeText(page, '.room-header button', '1 waiting to join');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'room-title', 'focus after an arrival');

    await river.page.getByRole('button', { name: 'Raise hand' }).click();
    await sam.page.getByRole('button', { name: 'Raise hand' }).click();
    await expectQueue(page, ['River', 'Sam']);
    // The queue's buttons: their names contain what they show (WCAG 2.5.3).
    await axe(page, 'the facilitator’s room with a queue');
    await screenshots(page, 'facilitator-queue');
    await page.getByRole('button', { name: 'Next speaker' }).focus();
    await page.keyboard.press('Enter');
    await seeText(page, '.floor-name', 'River');
    await expectQueue(page, ['Sam']);
    assert.notEqual(await focused(), 'body', 'focus after Next speaker');
    await page.getByRole('button', { name: 'Next speaker' }).focus();
    await page.keyboard.press('Enter');
    await seeText(page, '.floor-name', 'Sam');
    await expectQueue(page, []);
    assert.notEqual(await focused(), 'body', 'focus after Next speaker empties the queue');
    noErrors(dana, river, sam, kim);
  } finally {
    await browser.close();
  }
});

test('finding 10: long names, chat drafts, "Send to", the favicon, one name per setting', async () => {
  const room = await createRoom('Small things circle', { waiting_room: false });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const river = await person(browser, 'River');
    const missing = [];
    for (const p of [dana, river]) p.context.on('response', (r) => r.status() >= 400 && missing.push(`${r.status()} ${r.url()}`));

    // A pseudonym over 32 characters is not cut silently: the page says so and does not join.
    const long = 'Riverside-of-the-long-and-winding-name';
    await river.page.goto(room.join_url);
    await river.page.fill('#name', long);
    assert.equal(await river.page.inputValue('#name'), long, 'the name is not cut');
    await river.page.getByRole('button', { name: 'Join muted' }).click();
    await seeText(river.page, '.alert-error', '32 characters');
    await axe(river.page, 'the join page with a too-long name');
    await enter(river, room.join_url);
    await enter(dana, room.facilitator_url);

    // A chat draft survives a reload.
    await river.page.fill('#chat-input', 'half a thought');
    await river.page.reload();
    await river.page.locator('#room-title').waitFor();
    await until(river.page, 'the draft to come back', () => document.getElementById('chat-input').value === 'half a thought');

    // "Send to" goes back to everyone after a private reply.
    await river.page.selectOption('#chat-to', 'facilitators');
    await river.page.press('#chat-input', 'Enter');
    await dana.page.getByRole('button', { name: 'Reply privately to River' }).click();
    await dana.page.fill('#chat-input', 'Here for you');
    await dana.page.press('#chat-input', 'Enter');
    await seeText(river.page, '.msg.is-private', 'Here for you');
    await until(dana.page, '"Send to" to go back to everyone', () => document.getElementById('chat-to').value === 'room');
    await until(river.page, '"Send to" to go back to everyone', () => document.getElementById('chat-to').value === 'room');

    // One name per setting: the start page and the facilitator's panel say the same.
    const panel = { mute: await dana.page.innerText('label[for="set-mute-entry"]') };
    const other = await dana.context.newPage();
    await other.goto(`${new URL(room.join_url).origin}/`);
    await other.locator('#mute-on-entry').waitFor();
    await other.selectOption('#share-secs', '60');
    assert.equal(await other.innerText('label[for="mute-on-entry"]'), panel.mute);
    await dana.page.selectOption('#set-timer', '60');
    await dana.page.locator('#set-auto-end').waitFor();
    assert.equal(await other.innerText('label[for="auto-end"]'), await dana.page.innerText('label[for="set-auto-end"]'));
    await axe(other, 'the start page');

    assert.deepEqual(missing, [], 'every resource the pages asked for exists (the favicon too)');
    noErrors(dana, river);
  } finally {
    await browser.close();
  }
});

/** The mic button's label, once it is `label`. */
function micIs(page, label) {
  return until(page, `the mic button to read ${label}`, (l) => document.querySelector('[data-key="mic"]')?.textContent === l, label);
}

test('finding 12: per-person volume, and a clear prompt when the browser holds the meeting’s sound back', async () => {
  const room = await createRoom('Volume circle', { waiting_room: false, mute_on_entry: false });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const river = await person(browser, 'River');
    await enter(dana, room.facilitator_url);
    await enter(river, room.join_url);
    await dana.page.getByRole('button', { name: 'Unmute' }).click();
    await micIs(dana.page, 'Mute');

    const slider = river.page.getByRole('slider', { name: 'Volume for Dana' });
    await slider.fill('30');
    const stream = (await received(river, 'Dana')).stream;
    await poll(
      'Dana to play at 30% on River’s page',
      () => river.page.evaluate(async (id) => (await window.__circle.media.stats())?.streams[id]?.volume, stream),
      (v) => Math.abs(v - 0.3) < 0.001,
      30_000,
    );
    await axe(river.page, 'the room with volume controls');

    // A reload: the page has had no tap or key press yet, and the browser holds the voices back.
    // (Chromium's own policy cannot be used here: every call Playwright makes into a page counts as
    // a gesture. So the page plays it: play() is refused until a real click or key press.)
    await river.context.addInitScript(() => {
      let allowed = false;
      for (const type of ['click', 'keydown', 'pointerdown']) {
        window.addEventListener(type, (e) => e.isTrusted && (allowed = true), true);
      }
      const play = HTMLMediaElement.prototype.play;
      HTMLMediaElement.prototype.play = function () {
        return allowed ? play.call(this) : Promise.reject(new DOMException('play() needs a user gesture first', 'NotAllowedError'));
      };
    });
    await river.page.reload();
    // The volume chosen before the reload stays.
    await until(river.page, 'the volume to stay at 30%', () => document.querySelector('input[type="range"]')?.value === '30');
    const prompt = river.page.getByRole('button', { name: 'Tap to hear the meeting' });
    await prompt.waitFor({ timeout: 30_000 });
    await axe(river.page, 'the room with the "tap to hear" prompt');
    await screenshots(river.page, 'tap-to-hear');
    await prompt.click();
    await prompt.waitFor({ state: 'detached' });
    await poll(
      'the voices to play',
      () => river.page.evaluate(async () => Object.values((await window.__circle.media.stats())?.streams ?? {}).map((r) => r.playing)),
      (playing) => playing.length > 0 && playing.every(Boolean),
      30_000,
    );
    noErrors(dana, river);
  } finally {
    await browser.close();
  }
});

test('finding 16: shortcuts (hold Space to talk, M, H, ?), a skip link, and none while typing', async () => {
  const room = await createRoom('Shortcut circle', { waiting_room: false, mute_on_entry: false });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const river = await person(browser, 'River');
    await enter(dana, room.facilitator_url);
    await enter(river, room.join_url);
    const page = river.page;
    const blur = () => page.evaluate(() => document.activeElement?.blur());

    await blur();
    await page.keyboard.press('m');
    await micIs(page, 'Mute');
    await row(dana.page, 'River').locator('.badge', { hasText: /^Mic on$/ }).waitFor();
    await page.keyboard.press('m');
    await micIs(page, 'Unmute');
    await page.keyboard.press('h');
    await expectQueue(dana.page, ['River']);

    // Typing in the chat is typing.
    await page.focus('#chat-input');
    await page.keyboard.type('mh ');
    assert.equal(await page.inputValue('#chat-input'), 'mh ');
    await expectQueue(dana.page, ['River']);
    assert.equal(await page.evaluate(() => document.querySelector('[data-key="mic"]').textContent), 'Unmute');

    // Push to talk: unmuted while Space is held, muted again when it is let go.
    await blur();
    await page.keyboard.down('Space');
    await micIs(page, 'Mute');
    await row(dana.page, 'River').locator('.badge', { hasText: /^Mic on$/ }).waitFor();
    await page.keyboard.up('Space');
    await micIs(page, 'Unmute');
    await row(dana.page, 'River').locator('.badge', { hasText: /^Muted$/ }).waitFor();

    await page.keyboard.press('?');
    await seeText(page, '#confirm-title', 'Keyboard shortcuts');
    await seeText(page, '.shortcuts', 'Space (hold)');
    await axe(page, 'the shortcuts dialog');
    await screenshots(page, 'shortcuts');
    await page.keyboard.press('Escape');
    await page.locator('dialog[open]').waitFor({ state: 'detached' });

    // The skip link: the first stop after the title, to your own controls.
    await page.locator('#room-title').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to your controls');
    await page.keyboard.press('Enter');
    assert.ok(await page.evaluate(() => document.getElementById('your-controls').contains(document.activeElement)));
    noErrors(dana, river);
  } finally {
    await browser.close();
  }
});

test('finding 13: a facilitator hears a soft chime and sees the tab title change when someone waits; both can be turned off', async () => {
  const room = await createRoom('Arrivals circle');
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    // Counts the sounds the page plays from its own generated files (the chime).
    await dana.context.addInitScript(() => {
      window.__chimes = 0;
      const play = HTMLMediaElement.prototype.play;
      HTMLMediaElement.prototype.play = function () {
        if (this.src.startsWith('blob:')) window.__chimes += 1;
        return play.call(this);
      };
    });
    const river = await person(browser, 'River');
    const kim = await person(browser, 'Kim');
    await enter(dana, room.facilitator_url);
    assert.equal(await dana.page.evaluate(() => window.__chimes), 0);
    await enter(river, room.join_url, { waiting: true });
    await until(dana.page, 'the title to show who waits', () => document.title.startsWith('(1 waiting) Arrivals circle'));
    await until(dana.page, 'a chime', () => window.__chimes === 1);

    await dana.page.getByLabel('Play a soft chime').uncheck();
    await dana.page.getByLabel('Show it in the tab’s title').uncheck();
    await until(dana.page, 'the title to calm down', () => !document.title.includes('waiting'));
    await enter(kim, room.join_url, { waiting: true });
    await seeText(dana.page, '#waiting-title', 'Waiting room (2)');
    assert.equal(await dana.page.evaluate(() => window.__chimes), 1, 'no chime when turned off');
    assert.ok(!(await dana.page.title()).includes('waiting'));
    await axe(dana.page, 'the facilitator’s room with arrival alerts');
    noErrors(dana, river, kim);
  } finally {
    await browser.close();
  }
});

test('finding 11: choose the microphone and speaker, hear a test sound, see your level in the room, notice an unplugged microphone', async () => {
  const room = await createRoom('Devices circle', { waiting_room: false, mute_on_entry: false });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const river = await person(browser, 'River');
    await enter(dana, room.facilitator_url);
    await enter(river, room.join_url);
    const page = river.page;
    await page.getByRole('button', { name: 'Unmute' }).click();
    await micIs(page, 'Mute');
    // Your own level, in the room.
    await until(page, 'the level meter to move', () => Number(document.querySelector('[role="meter"][aria-label="Your microphone level"]')?.getAttribute('aria-valuenow')) > 0);

    await page.getByRole('button', { name: 'Sound settings' }).click();
    await seeText(page, '#confirm-title', 'Sound settings');
    const mics = await page.$$eval('#sound-mic option', (o) => o.map((x) => x.value));
    assert.ok(mics.length >= 1, 'the microphones are listed');
    assert.ok((await page.locator('#sound-speaker option').count()) >= 1, 'the speakers are listed');
    await page.selectOption('#sound-mic', mics.at(-1));
    await seeText(page, '[role="status"]', 'Microphone changed.');
    await poll('River to send on the chosen microphone', () => sent(river), (s) => s.sending, 30_000);
    await page.getByRole('button', { name: 'Play a test sound' }).click();
    await seeText(page, '[role="status"]', 'Did you hear a short chime?', 30_000);
    await axe(page, 'the sound settings');
    await screenshots(page, 'sound-settings');
    await page.getByRole('button', { name: 'Close' }).click();

    // The microphone is unplugged: the page says so and mutes.
    await page.evaluate(() => window.__circle.media.stream.getAudioTracks()[0].dispatchEvent(new Event('ended')));
    await seeText(page, '.toast', 'Your microphone was disconnected');
    await micIs(page, 'Unmute');
    await row(dana.page, 'River').locator('.badge', { hasText: /^Muted$/ }).waitFor();
    noErrors(dana, river);
  } finally {
    await browser.close();
  }
});
