// Presence (issue #10): coming back in a new tab takes up your place (finding 3), what members and
// the waiting room see when no facilitator is here, and the last facilitator's leave (finding 4), and
// a locked or full meeting said on the join page before a name is typed (finding 10). axe-core checks
// every new screen.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { axe, createRoom, launch, newPage, ownServer, person, personAction, row, screenshots, seeText, until } from './lib.mjs';

/** Opens `url` on `page`, types `name`, presses Join, and waits for the room, the waiting room or an error. */
async function enter(page, url, name) {
  await page.goto(url);
  await page.locator('#name').waitFor();
  await page.fill('#name', name);
  await page.getByRole('button', { name: 'Join muted' }).click();
  await page.locator('#room-title, #waiting-title, .join-form .alert-error:not([hidden])').first().waitFor();
}

/** The join page's error, if it shows one. */
async function joinError(page) {
  const error = page.locator('.join-form .alert-error:not([hidden])');
  return (await error.count()) ? error.innerText() : null;
}

function noErrors(...people) {
  assert.deepEqual(people.flatMap((p) => p.errors), []);
}

test('finding 3: a closed tab opened again in the grace period takes up its place, floor and all', async () => {
  const room = await createRoom('Second tab circle', { waiting_room: false, share_secs: 300 });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const sam = await person(browser, 'Sam');
    const kim = await person(browser, 'Kim');
    await enter(dana.page, room.facilitator_url, 'Dana');
    await enter(sam.page, room.join_url, 'Sam');
    await enter(kim.page, room.join_url, 'Kim');
    await kim.page.getByRole('button', { name: 'Raise hand' }).click();
    await personAction(dana.page, 'Sam', 'Give the floor');
    await seeText(sam.page, '.floor-label', 'You have the floor');
    const you = await sam.page.evaluate(() => window.__circle.state.you);
    const endsAt = await sam.page.evaluate(() => window.__circle.state.floor.speaker.ends_at);

    // Sam closes the tab by mistake...
    await sam.page.close();
    await row(dana.page, 'Sam').and(dana.page.locator('.is-reconnecting')).waitFor();
    // ...and opens the link again in the same browser, and types the same name.
    sam.page = await newPage(sam);
    await enter(sam.page, room.join_url, 'Sam');
    assert.equal(await joinError(sam.page), null, 'the same browser is not told its own name is taken');
    await seeText(sam.page, '.floor-label', 'You have the floor');
    const back = await sam.page.evaluate(() => ({ you: window.__circle.state.you, floor: window.__circle.state.floor }));
    assert.equal(back.you, you, 'the same participant');
    assert.equal(back.floor.speaker.ends_at, endsAt, 'the same share, on the same timer');
    assert.deepEqual(back.floor.queue.map((q) => q.name), ['Kim'], 'the queue as it was');
    await until(sam.page, 'the microphone to be off', () => window.__circle.state.me.self_muted === true);
    // The others see Sam back, once, not a newcomer.
    await until(dana.page, 'Sam to be back', () => !document.querySelector('.person.is-reconnecting'));
    assert.equal(await row(dana.page, 'Sam').count(), 1);
    await seeText(dana.page, '.floor-name', 'Sam');
    await axe(sam.page, 'the room, back in a new tab');

    // Someone else typing the same name is still someone else.
    const other = await person(browser, 'Other Sam');
    await enter(other.page, room.join_url, 'Sam');
    assert.match((await joinError(other.page)) ?? '', /already uses this name/);
    noErrors(dana, sam, kim);
  } finally {
    await browser.close();
  }
});

test('finding 4: with no facilitator here, members and the waiting room are told so; one arriving ends it', async () => {
  const room = await createRoom('No host circle'); // the waiting room is on
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const sam = await person(browser, 'Sam');
    const kim = await person(browser, 'Kim');
    await enter(dana.page, room.facilitator_url, 'Dana');
    await enter(sam.page, room.join_url, 'Sam');
    await dana.page.getByRole('button', { name: 'Admit Sam' }).click();
    await sam.page.locator('#room-title').waitFor();
    await enter(kim.page, room.join_url, 'Kim');
    await seeText(kim.page, 'h1', 'The facilitator will let you in soon');
    assert.equal(await sam.page.locator('#no-facilitator').count(), 0);

    // The only facilitator is asked first; "Leave anyway" leaves.
    await dana.page.getByRole('button', { name: 'Leave' }).click();
    await seeText(dana.page, '#confirm-title', 'You are the only facilitator');
    await dana.page.getByRole('dialog').getByRole('button', { name: 'Leave anyway' }).click();
    await seeText(dana.page, 'h1', 'You left the meeting');

    await seeText(kim.page, 'h1', 'No facilitator is here yet');
    assert.match(await kim.page.innerText('#main'), /You will be let in when one arrives/);
    assert.doesNotMatch(await kim.page.innerText('#main'), /will let you in soon/);
    await screenshots(kim.page, 'waiting-no-facilitator');
    await seeText(sam.page, '#no-facilitator', 'No facilitator is here right now');
    await screenshots(sam.page, 'room-no-facilitator');

    // A facilitator arrives: the notices go.
    const jo = await person(browser, 'Jo');
    await enter(jo.page, room.facilitator_url, 'Jo');
    await seeText(kim.page, 'h1', 'The facilitator will let you in soon');
    await sam.page.locator('#no-facilitator').waitFor({ state: 'detached' });
    noErrors(sam, kim, jo);
  } finally {
    await browser.close();
  }
});

test('finding 4: the last facilitator leaving can make someone a facilitator first', async () => {
  const room = await createRoom('Hand over circle', { waiting_room: false });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const sam = await person(browser, 'Sam');
    const river = await person(browser, 'River');
    await enter(dana.page, room.facilitator_url, 'Dana');
    await enter(sam.page, room.join_url, 'Sam');
    await enter(river.page, room.join_url, 'River');
    await row(dana.page, 'River').waitFor();

    await dana.page.getByRole('button', { name: 'Leave' }).click();
    const dialog = dana.page.getByRole('dialog');
    await seeText(dana.page, '#confirm-title', 'You are the only facilitator');
    assert.equal(await dana.page.evaluate(() => document.activeElement.textContent), 'Stay', 'Enter alone never leaves');
    await axe(dana.page, 'the last facilitator’s leave dialog');
    await screenshots(dana.page, 'last-facilitator-leave');
    await dialog.getByRole('button', { name: 'Stay' }).click();
    await dana.page.locator('#room-title').waitFor();
    assert.equal(await dana.page.locator('dialog[open]').count(), 0);

    await dana.page.getByRole('button', { name: 'Leave' }).click();
    await dialog.getByLabel('New facilitator').selectOption({ label: 'River' });
    await dialog.getByRole('button', { name: 'Make them facilitator and leave' }).click();
    await seeText(dana.page, 'h1', 'You left the meeting');
    await until(river.page, 'River to be a facilitator', () => window.__circle.state.role === 'facilitator');
    assert.equal(await sam.page.locator('#no-facilitator').count(), 0, 'a facilitator is still here');
    noErrors(dana, sam, river);
  } finally {
    await browser.close();
  }
});

test('finding 10: a locked meeting says so on the join page, before a name is typed', async () => {
  const room = await createRoom('Locked circle', { locked: true });
  const browser = await launch();
  try {
    const kim = await person(browser, 'Kim');
    await kim.page.goto(room.join_url);
    await seeText(kim.page, '#join-closed', 'This meeting is locked right now');
    assert.equal(await kim.page.inputValue('#name'), '', 'nothing typed yet');
    await screenshots(kim.page, 'join-locked');
    // Joining anyway still gets the server's answer.
    await kim.page.fill('#name', 'Kim');
    await kim.page.getByRole('button', { name: 'Join muted' }).click();
    await seeText(kim.page, '.alert-error', 'locked');

    // The facilitator's link is not locked out, and is not told it is.
    const dana = await person(browser, 'Dana');
    await dana.page.goto(room.facilitator_url);
    await dana.page.locator('#name').waitFor();
    assert.equal(await dana.page.locator('#join-closed').count(), 0);
    noErrors(kim, dana);
  } finally {
    await browser.close();
  }
});

test('finding 10: a full meeting says so on the join page, before a name is typed', async () => {
  const server = await ownServer('presence-full', { CIRCLE_ROOMS__MAX_PARTICIPANTS: '1' });
  const browser = await launch();
  try {
    await server.start();
    const room = await createRoom('Small circle', { waiting_room: false }, server.apiUrl);
    const dana = await person(browser, 'Dana', { server });
    await enter(dana.page, room.facilitator_url, 'Dana');
    const kim = await person(browser, 'Kim', { server });
    await kim.page.goto(room.join_url);
    await seeText(kim.page, '#join-closed', 'This meeting is full right now');
    await axe(kim.page, 'the join page of a full meeting');
    noErrors(dana, kim);
  } finally {
    await browser.close();
    await server.close();
  }
});
