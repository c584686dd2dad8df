// A whole meeting in real Chromium: one facilitator (Maya), two members (Robin, Alex) and a late
// joiner (Kim), each in their own browser context, through the web client served by the real server.
// Every step waits on what a person would see, or on what a page's voice connection receives
// (`getStats()`); none sleeps but for the measured window in which a muted voice must not arrive.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CLIENT_URL,
  announced,
  dropConnection,
  expectHears,
  expectQueue,
  expectSilence,
  launch,
  newPage,
  person,
  personAction,
  poll,
  received,
  restoreConnection,
  row,
  screenshots,
  seeText,
  sent,
  until,
} from './lib.mjs';

/** Writes in the chat and waits until the server took it (the box empties). */
async function say(p, text, to) {
  const page = p.page;
  if (to) await page.selectOption('#chat-to', to);
  await page.fill('#chat-input', text);
  await page.press('#chat-input', 'Enter');
  await until(page, `"${text}" to be sent`, () => document.getElementById('chat-input').value === '');
}

/** The mic button's label and whether it can be pressed. */
function micButton(page) {
  return page.evaluate(() => {
    const b = document.querySelector('[data-key="mic"]');
    return { label: b.textContent, disabled: b.disabled };
  });
}

async function join(page, name) {
  await page.fill('#name', name);
  await page.getByRole('button', { name: 'Join muted' }).click();
}

test('a whole meeting: create, wait, admit, queue, timed share, chat, mute, reconnect, remove, ban, end', async (t) => {
  const browser = await launch();
  const everyone = [];
  let maya, robin, alex, kim;
  let joinUrl, facUrl;
  let alexAgain; // Alex's second tab, after being removed
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
    await step('the start page creates a meeting and shows both links', async () => {
      maya = await person(browser, 'Maya', { clipboard: true });
      everyone.push(maya);
      const page = maya.page;
      await page.goto(`${CLIENT_URL}/`);
      await seeText(page, 'h1', 'Start a meeting');
      await screenshots(page, 'start');
      await page.fill('#title', 'Tuesday circle');
      // A short timed share, so the warning and the end come within seconds.
      await page.selectOption('#share-secs', 'other');
      await page.fill('#share-other', '8');
      await page.fill('#share-warning', '5');
      await page.getByRole('button', { name: 'Create the meeting' }).click();
      await seeText(page, 'h1', 'Your meeting is ready');
      joinUrl = await page.inputValue('#members-link');
      facUrl = await page.inputValue('#facilitator-link');
      assert.match(joinUrl, /^http:\/\/127\.0\.0\.1:\d+\/#room=[\w-]{22}$/);
      assert.ok(facUrl.startsWith(`${joinUrl}&key=`), facUrl);
      await seeText(page, '.alert-caution', 'Keep the facilitator link private');
      await page.locator('.link-field', { hasText: 'Link for members' }).getByRole('button', { name: 'Copy' }).click();
      await seeText(page, '.link-field button', 'Copied');
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), joinUrl);
      await screenshots(page, 'start-created');
    });

    await step('the facilitator joins by the facilitator link', async () => {
      const page = maya.page;
      await page.getByRole('link', { name: 'Open the meeting as facilitator' }).click();
      await seeText(page, 'h1', 'Tuesday circle');
      await seeText(page, '.badge-role', 'Facilitator link');
      await join(page, 'Maya');
      await seeText(page, '#fac-title', 'Running the meeting');
      assert.ok(!page.url().includes('key='), 'the facilitator key leaves the address bar once used');
    });

    await step('members check their microphone, join, and wait in the waiting room', async () => {
      robin = await person(browser, 'Robin');
      alex = await person(browser, 'Alex');
      everyone.push(robin, alex);
      const page = robin.page;
      await page.goto(joinUrl);
      await seeText(page, 'h1', 'Tuesday circle');
      await page.getByRole('button', { name: 'Check my microphone' }).click();
      // Chromium's fake microphone beeps: the meter hears it.
      await seeText(page, '#mic-status', 'We can hear you');
      await screenshots(page, 'join');
      await join(page, 'Robin');
      await seeText(page, 'h1', 'The facilitator will let you in soon');
      // Nothing of the room: no roster, no chat, no other name.
      assert.equal(await page.locator('.room, .chat-log, .roster').count(), 0);
      assert.ok(!(await page.textContent('body')).includes('Maya'));
      await screenshots(page, 'waiting');

      await alex.page.goto(joinUrl);
      await join(alex.page, 'Alex');
      await seeText(alex.page, 'h1', 'The facilitator will let you in soon');
    });

    await step('the facilitator sees the waiting list and admits everyone', async () => {
      const page = maya.page;
      await seeText(page, '#waiting-title', 'Waiting room (2)');
      await seeText(page, '.room-header button', '2 waiting to join');
      await announced(page, 'Alex is in the waiting room.');
      await page.getByRole('button', { name: 'Admit all' }).click();
      for (const p of [robin, alex]) await seeText(p.page, '#people-title', 'People here (3)');
      await seeText(page, '#waiting-title', 'Waiting room (0)');
      await announced(robin.page, 'You are in the meeting.');
      // Members join muted, and in this room need a facilitator's permission to unmute: the room's
      // rule, worded as a turn to wait for, not as a sanction.
      await seeText(robin.page, '#mic-note', 'Waiting for your turn to speak');
      assert.deepEqual(await micButton(robin.page), { label: 'Unmute', disabled: true });
    });

    await step('hands go up, and every page shows the same queue, reordered by the facilitator', async () => {
      await alex.page.getByRole('button', { name: 'Raise hand' }).click();
      await expectQueue(alex.page, ['Alex']);
      await robin.page.getByRole('button', { name: 'Raise hand' }).click();
      for (const p of [maya, robin, alex]) await expectQueue(p.page, ['Alex', 'Robin']);
      await row(maya.page, 'Robin').locator('.badge', { hasText: 'Hand raised' }).waitFor();
      assert.equal(await robin.page.getByRole('button', { name: 'Lower hand' }).getAttribute('aria-pressed'), 'true');
      await maya.page.getByRole('button', { name: 'Move Robin up' }).click();
      for (const p of [maya, robin, alex]) await expectQueue(p.page, ['Robin', 'Alex']);
    });

    await step('the next speaker gets a timed share; the countdown, warning and end show everywhere', async () => {
      await maya.page.getByRole('button', { name: 'Next speaker' }).click();
      for (const p of [maya, robin, alex]) {
        await seeText(p.page, '.floor-name', 'Robin');
        await expectQueue(p.page, ['Alex']);
      }
      await seeText(robin.page, '.floor-label', 'You have the floor');
      // The floor comes with permission to speak: Robin may unmute (the server never does it for him).
      assert.deepEqual(await micButton(robin.page), { label: 'Unmute', disabled: false });
      await announced(alex.page, 'Robin has the floor.');
      const first = await alex.page.textContent('.timer-text');
      assert.match(first, /^0:0\d left$/);
      await until(alex.page, 'the countdown to move', (f) => document.querySelector('.timer-text')?.textContent !== f, first);
      // The 8-second share warns 5 seconds before its end...
      for (const p of [maya, robin, alex]) await p.page.locator('.timer.is-warning, .timer.is-expired').waitFor();
      await announced(alex.page, 'Robin has 5 seconds left.');
      await announced(robin.page, 'You have 5 seconds left.');
      await screenshots(alex.page, 'room-member');
      // ...and then runs out.
      for (const p of [maya, robin, alex]) await seeText(p.page, '.timer.is-expired', 'Time is up');
      await announced(maya.page, 'Time is up for Robin.');
      await maya.page.getByRole('button', { name: 'Take the floor back' }).click();
      for (const p of [maya, robin, alex]) await seeText(p.page, '.floor-label', 'No one has the floor');
    });

    await step('chat: room messages, a private line to the facilitators, a private reply', async () => {
      await say(robin, 'Hello everyone');
      for (const p of [maya, alex]) await seeText(p.page, '.msg', 'Hello everyone');
      await announced(alex.page, 'Robin: Hello everyone');
      await say(alex, 'Hi Robin, welcome');
      await seeText(robin.page, '.msg', 'Hi Robin, welcome');

      await say(robin, 'I need to talk after the meeting', 'facilitators');
      await seeText(maya.page, '.msg.is-private', 'I need to talk after the meeting');
      await seeText(maya.page, '.msg.is-private .msg-meta', 'Private · to the facilitators');
      await seeText(robin.page, '.msg.is-private', 'I need to talk after the meeting');
      // A later room message reaches Alex: by then the private one would have, had it been sent to him.
      await say(robin, 'Thank you all', 'room');
      await seeText(alex.page, '.msg', 'Thank you all');
      assert.equal(await alex.page.locator('.msg', { hasText: 'I need to talk' }).count(), 0);
      assert.ok(!(await alex.page.textContent('#announcer')).includes('I need to talk'));

      await maya.page.getByRole('button', { name: 'Reply privately to Robin' }).click();
      await say(maya, 'Of course, stay on after');
      await seeText(robin.page, '.msg.is-private', 'Of course, stay on after');
      await seeText(robin.page, '.msg.is-private .msg-meta', 'from the facilitators to you');
      await say(maya, 'Welcome, everyone', 'room');
      await seeText(alex.page, '.msg', 'Welcome, everyone');
      assert.equal(await alex.page.locator('.msg', { hasText: 'Of course' }).count(), 0);
    });

    await step('a late joiner: microphone refused, a taken name, denied, then admitted with the chat history', async () => {
      kim = await person(browser, 'Kim', { denyMic: true });
      everyone.push(kim);
      const page = kim.page;
      await page.goto(joinUrl);
      await page.getByRole('button', { name: 'Check my microphone' }).click();
      await seeText(page, '#mic-status', 'did not allow the microphone');
      await seeText(page, '#mic-status', 'You can still join to listen and chat');
      await join(page, 'robin');
      await seeText(page, '.alert-error', 'already uses this name');
      await join(page, 'Kim');
      await seeText(page, 'h1', 'The facilitator will let you in soon');

      await maya.page.getByRole('button', { name: 'Deny Kim' }).click();
      await seeText(page, 'h1', 'You were not let in');
      await seeText(page, '.end-message', 'A facilitator did not let you into this meeting.');

      await page.reload();
      await join(page, 'Kim');
      await seeText(page, 'h1', 'The facilitator will let you in soon');
      await seeText(maya.page, '#waiting-title', 'Waiting room (1)');
      await screenshots(maya.page, 'room-facilitator');
      await maya.page.getByRole('button', { name: 'Admit Kim' }).click();
      await seeText(page, '#people-title', 'People here (4)');
      for (const text of ['Hello everyone', 'Hi Robin, welcome', 'Thank you all', 'Welcome, everyone']) {
        await seeText(page, '.msg', text);
      }
      assert.equal(await page.locator('.msg.is-private').count(), 0, 'private messages are not in the history');
    });

    await step('a private roster: members see the facilitators, themselves and a head count', async () => {
      await maya.page.getByLabel('Private roster').check();
      await until(robin.page, 'a private roster', () => document.querySelectorAll('.roster .person').length === 2);
      await seeText(robin.page, '.people', 'and 2 other members');
      await expectQueue(robin.page, ['A member']);
      assert.equal(await maya.page.locator('.roster .person').count(), 4);
      await maya.page.getByLabel('Private roster').uncheck();
      await until(robin.page, 'the full roster', () => document.querySelectorAll('.roster .person').length === 4);
      await expectQueue(robin.page, ['Alex']);
      // The rebuilt views came with the room history only; the private lines already shown stay.
      await seeText(maya.page, '.msg.is-private', 'I need to talk after the meeting');
      await seeText(robin.page, '.msg.is-private', 'Of course, stay on after');
    });

    await step('the facilitator allows a member to speak; the members hear each other; a mute silences them', async () => {
      await personAction(maya.page, 'Alex', 'Allow to speak');
      await until(alex.page, 'Unmute to be enabled', () => !document.querySelector('[data-key="mic"]').disabled);
      await announced(alex.page, 'You may speak now.');
      await alex.page.getByRole('button', { name: 'Unmute' }).click();
      await until(alex.page, 'the mic to be on', () => document.querySelector('[data-key="mic"]').textContent === 'Mute');
      await row(maya.page, 'Alex').locator('.badge', { hasText: 'Mic on' }).waitFor();
      await row(robin.page, 'Alex').locator('.badge', { hasText: 'Mic on' }).waitFor();
      // Robin had the floor, which allowed him to speak: he unmutes too.
      await robin.page.getByRole('button', { name: 'Unmute' }).click();
      await row(alex.page, 'Robin').locator('.badge', { hasText: 'Mic on' }).waitFor();
      // They hear each other: packets on the other's track, with sound in them. Kim, whose browser
      // refused the microphone, hears them too.
      await Promise.all([expectHears(robin, alex), expectHears(alex, robin), expectHears(maya, alex), expectHears(kim, alex)]);

      await personAction(maya.page, 'Alex', 'Mute');
      for (const p of [maya, robin, alex]) {
        await row(p.page, 'Alex').locator('.badge', { hasText: 'Muted by facilitator' }).waitFor();
      }
      await until(alex.page, 'Unmute to be disabled', () => {
        const b = document.querySelector('[data-key="mic"]');
        return b.disabled && b.textContent === 'Unmute';
      });
      await seeText(alex.page, '#mic-note', 'A facilitator has muted you. You can unmute when they allow you to speak.');
      await announced(alex.page, 'A facilitator muted you.');
      // Alex's page took the microphone off the connection...
      await poll('Alex to stop sending', () => sent(alex), (s) => !s.sending);
      // ...and even a page that keeps sending (here made to, as a misbehaving client would) is not
      // heard: the server drops what a muted member sends.
      await alex.page.evaluate(async () => {
        window.__forced = await navigator.mediaDevices.getUserMedia({ audio: true });
        await window.__circle.media.pc.getTransceivers()[0].sender.replaceTrack(window.__forced.getAudioTracks()[0]);
      });
      const trying = await sent(alex);
      const [quiet] = await Promise.all([expectSilence(robin, alex), expectSilence(maya, alex)]);
      const tried = await sent(alex);
      assert.ok(tried.packetsSent > trying.packetsSent + 25, `Alex's page kept sending (${trying.packetsSent} -> ${tried.packetsSent})`);
      await alex.page.evaluate(async () => {
        await window.__circle.media.pc.getTransceivers()[0].sender.replaceTrack(null);
        for (const t of window.__forced.getTracks()) t.stop();
      });
      // Robin is still heard.
      await expectHears(alex, robin, { after: await received(alex, 'Robin') });

      // Allowed again and unmuted, Alex is heard again; then muted again for what follows.
      await personAction(maya.page, 'Alex', 'Allow to speak');
      await until(alex.page, 'Unmute to be enabled', () => !document.querySelector('[data-key="mic"]').disabled);
      await alex.page.getByRole('button', { name: 'Unmute' }).click();
      await expectHears(robin, alex, { after: quiet });
      await personAction(maya.page, 'Alex', 'Mute');
      await row(alex.page, 'Alex').locator('.badge', { hasText: 'Muted by facilitator' }).waitFor();
      await poll('Alex to stop sending', () => sent(alex), (s) => !s.sending);
    });

    await step('a dropped connection shows Reconnecting… and comes back to the same place, voice too', async () => {
      const before = await received(alex, 'Robin');
      // The page cannot reconnect at once, so the state is there to see.
      await dropConnection(alex.page);
      await seeText(alex.page, '.connection', 'Reconnecting…');
      await row(maya.page, 'Alex').locator('.badge', { hasText: 'Reconnecting…' }).waitFor();
      await restoreConnection(alex.page);
      await alex.page.locator('.connection.is-reconnecting').waitFor({ state: 'detached' });
      await row(maya.page, 'Alex').locator('.badge', { hasText: 'Reconnecting…' }).waitFor({ state: 'detached' });
      // Same name, same hand in the queue, same mute state, same chat.
      for (const p of [maya, alex]) await expectQueue(p.page, ['Alex']);
      await row(alex.page, 'Alex').locator('.badge', { hasText: 'Muted by facilitator' }).waitFor();
      assert.deepEqual(await micButton(alex.page), { label: 'Unmute', disabled: true });
      await seeText(alex.page, '#people-title', 'People here (4)');
      await seeText(alex.page, '.msg', 'Welcome, everyone');
      // A fresh voice connection, on which Robin is heard again; Alex, still muted, sends nothing.
      const after = await expectHears(alex, robin, { generation: before.generation + 1, after: before });
      assert.ok(after.generation > before.generation, 'the resume starts a new voice connection');
      assert.equal((await sent(alex)).sending, false);
    });

    await step('remove, lock: a removed member cannot come back while the room is locked, then can', async () => {
      await personAction(maya.page, 'Alex', 'Remove from meeting…');
      await maya.page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
      await seeText(alex.page, 'h1', 'You are no longer in this meeting');
      await seeText(alex.page, '.end-message', 'A facilitator removed you from this meeting.');
      await row(maya.page, 'Alex').waitFor({ state: 'detached' });
      await seeText(robin.page, '#people-title', 'People here (3)');

      await maya.page.getByLabel('Lock the room').check();
      await seeText(robin.page, '.room-header .badge', 'Locked');
      alexAgain = await newPage(alex);
      await alexAgain.goto(joinUrl);
      await join(alexAgain, 'Alex');
      await seeText(alexAgain, '.alert-error', 'locked this meeting');

      await maya.page.getByLabel('Lock the room').uncheck();
      await robin.page.locator('.room-header .badge', { hasText: 'Locked' }).waitFor({ state: 'detached' });
      await alexAgain.getByRole('button', { name: 'Join muted' }).click();
      await seeText(alexAgain, 'h1', 'The facilitator will let you in soon');
    });

    await step('ban: the banned member cannot rejoin by the link', async () => {
      await personAction(maya.page, 'Kim', 'Ban from meeting…');
      await maya.page.getByRole('dialog').getByRole('button', { name: 'Ban' }).click();
      await seeText(kim.page, '.end-message', 'you cannot rejoin it');
      // Same browser, so the same device id: a new join by the link is refused.
      const retry = await newPage(kim);
      await retry.goto(joinUrl);
      await join(retry, 'Kim');
      await seeText(retry, '.alert-error', 'You cannot join this meeting.');
      // A wrong facilitator key is refused too.
      await retry.goto(`${joinUrl}&key=not-the-key`);
      await retry.reload();
      await join(retry, 'Lee');
      await seeText(retry, '.alert-error', 'facilitator link is not valid');
    });

    await step('moderation: delete a message, pause a member’s chat, chat off, co-facilitator', async () => {
      await maya.page.getByRole('button', { name: 'Delete message from Alex' }).click();
      await robin.page.locator('.msg', { hasText: 'Hi Robin, welcome' }).waitFor({ state: 'detached' });

      await personAction(maya.page, 'Robin', 'Pause their chat');
      await seeText(robin.page, '#chat-to-hint', 'A facilitator has paused your chat.');
      assert.ok(await robin.page.locator('#chat-input').isDisabled());
      await personAction(maya.page, 'Robin', 'Let them chat again');
      await until(robin.page, 'chat to be allowed', () => !document.getElementById('chat-input').disabled);

      await maya.page.getByLabel('Room chat on').uncheck();
      await seeText(robin.page, '.chat-state', 'turned the room chat off');
      assert.deepEqual(await robin.page.$$eval('#chat-to option', (o) => o.map((x) => x.value)), ['facilitators']);
      await maya.page.getByLabel('Room chat on').check();
      await until(robin.page, 'chat to be on', () => document.querySelector('.chat-state').textContent === '');

      await personAction(maya.page, 'Robin', 'Make co-facilitator');
      await seeText(robin.page, '#fac-title', 'Running the meeting');
      await announced(robin.page, 'You are now a co-facilitator.');
      await personAction(maya.page, 'Robin', 'Make member');
      await robin.page.locator('#fac-title').waitFor({ state: 'detached' });
    });

    await step('the facilitator ends the meeting: everyone sees the end, and the link stops working', async () => {
      await maya.page.locator('[data-key="end-meeting"]').click();
      await maya.page.getByRole('dialog').getByRole('button', { name: 'End the meeting' }).click();
      for (const page of [maya.page, robin.page, alexAgain]) await seeText(page, 'h1', 'The meeting has ended');
      await screenshots(robin.page, 'ended');
      const late = await newPage(kim);
      await late.goto(joinUrl);
      await seeText(late, 'h1', 'This meeting does not exist or has ended');
    });

    await step('no page logged an error', async () => {
      assert.deepEqual(everyone.flatMap((p) => p.errors), []);
    });
  } finally {
    await browser.close();
  }
});

