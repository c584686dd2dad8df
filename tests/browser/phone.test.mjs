// The room on a phone (issue #10, item 17): tabs instead of one long column, with badges for new chat
// messages and people waiting, the controls bar always in reach, and no tabs on a desktop.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import { DESKTOP, PHONE, SHOTS, axe, chooseLanguage, createRoom, expectQueue, launch, person, personAction, screenshots, seeText, until } from './lib.mjs';

/** Opens `url`, joins as `p.name`, and waits for the room (or the waiting room). */
async function enter(p, url, { waiting = false } = {}) {
  await p.page.goto(url);
  await p.page.locator('#name').waitFor();
  await p.page.fill('#name', p.name);
  await p.page.getByRole('button', { name: 'Join muted' }).click();
  if (waiting) await seeText(p.page, 'h1', 'The facilitator will let you in soon');
  else await p.page.locator('#room-title').waitFor();
}

/** The tabs a person sees, by their visible words and a badge's number ("Chat 2"). */
function tabTexts(page) {
  return page
    .getByRole('tab')
    .evaluateAll((els) => els.map((e) => [...e.querySelectorAll('.room-tab-label, .room-tab-badge')].map((s) => s.innerText).filter(Boolean).join(' ')));
}

/** The tab whose accessible name is exactly `name` (its badge included, as a screen reader hears it). */
function tab(page, name) {
  return page.getByRole('tab', { name, exact: true });
}

/**
 * Opens a tab by tapping it; checks that it is the chosen one and that its panel, and only its
 * panel, shows.
 */
async function openTab(page, name) {
  await page.getByRole('tab', { name: new RegExp(`^${name}\\b`) }).click();
  const chosen = page.getByRole('tab', { selected: true });
  assert.equal(await chosen.locator('.room-tab-label').innerText(), name);
  const panels = page.getByRole('tabpanel');
  assert.equal(await panels.count(), 1, `one panel shows on the ${name} tab`);
  assert.equal(await panels.getAttribute('aria-labelledby'), await chosen.getAttribute('id'));
}

/**
 * On the tab shown: mute, raise hand and leave are on screen at the top of the page and scrolled to
 * its end, and the page is no wider than the phone.
 */
async function controlsInReach(page, where) {
  for (const end of ['top', 'bottom']) {
    const out = await page.evaluate((end) => {
      for (const box of [document.scrollingElement, document.querySelector('.room-grid')]) box.scrollTop = end === 'top' ? 0 : box.scrollHeight;
      return ['mic', 'hand', 'leave']
        .map((key) => [key, document.querySelector(`#your-controls [data-key="${key}"]`)?.getBoundingClientRect()])
        .filter(([, r]) => !r || r.top < 0 || r.left < 0 || r.bottom > window.innerHeight || r.right > window.innerWidth)
        .map(([key, r]) => `${key} at ${r ? `${Math.round(r.top)}..${Math.round(r.bottom)}` : 'nowhere'}`);
    }, end);
    assert.deepEqual(out, [], `the controls bar in view on ${where}, scrolled to the ${end}`);
  }
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(wide <= 0, `${where}: the page scrolls ${wide} px sideways`);
  await page.evaluate(() => {
    for (const box of [document.scrollingElement, document.querySelector('.room-grid')]) box.scrollTop = 0;
  });
}

test('on a phone the room is tabs with badges, the controls stay in reach; a desktop has no tabs', async () => {
  const room = await createRoom('Phone circle');
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana', { viewport: PHONE });
    const sam = await person(browser, 'Sam', { viewport: PHONE });
    const kim = await person(browser, 'Kim', { viewport: PHONE });
    await enter(dana, room.facilitator_url);
    const fac = dana.page;

    // The facilitator has four tabs, the first chosen; each panel is a tab's panel.
    assert.deepEqual(await tabTexts(fac), ['Speaking', 'People', 'Chat', 'Facilitator']);
    await until(fac, 'the Speaking tab chosen', () => document.querySelector('[role="tab"][aria-selected="true"]')?.id === 'tab-speaking');
    assert.equal(await fac.getByRole('tablist', { name: 'Parts of the meeting' }).count(), 1);

    // Someone arrives in the waiting room: a badge on the Facilitator tab, heard as a count.
    await enter(sam, room.join_url, { waiting: true });
    await tab(fac, 'Facilitator, 1 person waiting to join').waitFor();
    assert.deepEqual(await tabTexts(fac), ['Speaking', 'People', 'Chat', 'Facilitator 1']);
    await axe(fac, 'the phone tabs with someone waiting');
    // (Not `screenshots`: on a desktop the badges go, as every panel is in sight.)
    await fac.screenshot({ path: join(SHOTS, 'phone-tabs-waiting-badge.png') });

    // Admit works from the Facilitator tab, where the waiting list is on a phone.
    await openTab(fac, 'Facilitator');
    assert.equal(await tab(fac, 'Facilitator').count(), 1, 'no badge on the tab on show');
    await fac.getByRole('tabpanel').getByRole('button', { name: 'Admit Sam' }).click();
    await sam.page.locator('#room-title').waitFor();
    const mem = sam.page;

    // A member has no Facilitator tab.
    assert.deepEqual(await tabTexts(mem), ['Speaking', 'People', 'Chat']);

    // The facilitator's microphone on: its level meter joins the controls bar, which still fits.
    await fac.getByRole('button', { name: 'Unmute' }).click();
    await fac.locator('#your-controls .mic-level').waitFor();

    // Every tab: its panel alone, the controls bar in view at either end of the page, nothing wider
    // than the phone; axe and pictures in both languages and themes (`screenshots`).
    for (const [p, who, names] of [
      [fac, 'facilitator', ['Speaking', 'People', 'Chat', 'Facilitator']],
      [mem, 'member', ['Speaking', 'People', 'Chat']],
    ]) {
      for (const name of names) {
        await openTab(p, name);
        await controlsInReach(p, `the ${who}'s ${name} tab`);
        await screenshots(p, `phone-tabs-${who}-${name.toLowerCase()}`);
      }
    }

    // Each panel comes back where it was read: after another tab, and after a change of language
    // (which draws the room anew).
    const boxTop = () => fac.evaluate(() => document.querySelector('.room-grid').scrollTop);
    await openTab(fac, 'Facilitator');
    await fac.evaluate(() => (document.querySelector('.room-grid').scrollTop = 300));
    await openTab(fac, 'People');
    assert.equal(await boxTop(), 0, 'People from its top');
    await openTab(fac, 'Facilitator');
    assert.equal(await boxTop(), 300, 'Facilitator where it was left');
    await chooseLanguage(fac, 'es');
    await seeText(fac, '[role="tab"][aria-selected="true"]', 'Facilitar');
    await until(fac, 'the panel where it was read', () => document.querySelector('.room-grid').scrollTop === 300);
    await chooseLanguage(fac, 'en');

    // A draft in the chat, then away to another tab; two messages arrive meanwhile.
    await openTab(mem, 'Chat');
    await mem.fill('#chat-input', 'A thought I am still writing');
    await openTab(mem, 'Speaking');
    await openTab(fac, 'Chat');
    for (const text of ['Welcome, everyone.', 'We begin in a minute.']) {
      await fac.fill('#chat-input', text);
      await fac.keyboard.press('Enter');
      await seeText(fac, '.msg', text);
    }
    await tab(mem, 'Chat, 2 new messages').waitFor();
    assert.deepEqual(await tabTexts(mem), ['Speaking', 'People', 'Chat 2']);
    assert.equal(await tab(fac, 'Chat').count(), 1, 'no badge on the tab on show');
    // (axe looks at the page in each language: a change of language keeps the badge.)
    await axe(mem, 'the phone tabs with new messages');
    assert.deepEqual(await tabTexts(mem), ['Speaking', 'People', 'Chat 2']);
    await mem.screenshot({ path: join(SHOTS, 'phone-tabs-chat-badge.png') });

    // Opening Chat clears the badge; the draft is still there.
    await openTab(mem, 'Chat');
    assert.equal(await tab(mem, 'Chat').count(), 1, 'the badge cleared');
    assert.deepEqual(await tabTexts(mem), ['Speaking', 'People', 'Chat']);
    await seeText(mem, '.msg', 'We begin in a minute.');
    assert.equal(await mem.inputValue('#chat-input'), 'A thought I am still writing');

    // The keyboard: the arrows move between tabs (round the ends) and choose them; Home and End.
    const chosen = () => mem.evaluate(() => [document.activeElement.id, document.querySelector('[aria-selected="true"]').id]);
    await tab(mem, 'Chat').focus();
    await mem.keyboard.press('ArrowRight');
    assert.deepEqual(await chosen(), ['tab-speaking', 'tab-speaking']);
    await mem.keyboard.press('ArrowRight');
    assert.deepEqual(await chosen(), ['tab-people', 'tab-people']);
    await mem.keyboard.press('ArrowLeft');
    await mem.keyboard.press('ArrowLeft');
    assert.deepEqual(await chosen(), ['tab-chat', 'tab-chat']);
    await mem.keyboard.press('Home');
    assert.deepEqual(await chosen(), ['tab-speaking', 'tab-speaking']);
    await mem.keyboard.press('End');
    assert.deepEqual(await chosen(), ['tab-chat', 'tab-chat']);
    // Only the chosen tab is in the Tab order.
    assert.deepEqual(await mem.getByRole('tab').evaluateAll((els) => els.map((e) => e.tabIndex)), [-1, -1, 0]);
    // Tab goes from the chosen tab into its panel, and Shift+Tab back.
    await mem.keyboard.press('Tab');
    assert.equal(await mem.evaluate(() => document.activeElement.getAttribute('role')), 'tabpanel');
    assert.equal(await mem.evaluate(() => document.activeElement.getAttribute('aria-labelledby')), 'tab-chat');
    await mem.keyboard.press('Shift+Tab');
    assert.equal(await mem.evaluate(() => document.activeElement.id), 'tab-chat');
    // The shortcuts still work with a tab focused: H raises the hand.
    await mem.keyboard.press('h');
    await expectQueue(fac, ['Sam']);

    // Another arrival while the facilitator reads the chat: the header's "1 waiting to join" opens the
    // Facilitator tab at the waiting room.
    await enter(kim, room.join_url, { waiting: true });
    await tab(fac, 'Facilitator, 1 person waiting to join').waitFor();
    await fac.getByRole('button', { name: '1 waiting to join' }).click();
    assert.equal(await fac.getByRole('tab', { selected: true }).getAttribute('id'), 'tab-facilitator');
    assert.equal(await fac.evaluate(() => document.activeElement.id), 'waiting-title');
    assert.ok(await fac.getByRole('tabpanel').getByRole('button', { name: 'Admit Kim' }).isVisible());

    // On a desktop: no tabs, every panel shows, the waiting room is back under People.
    await fac.setViewportSize(DESKTOP);
    await until(fac, 'the tabs gone', () => !document.querySelector('.room-tabs')?.checkVisibility());
    assert.equal(await fac.getByRole('tab').count(), 0);
    assert.equal(await fac.getByRole('tablist').count(), 0);
    assert.equal(await fac.locator('[role="tabpanel"]').count(), 0);
    for (const panel of ['.stage', '.people', '.chat', '.facilitator']) {
      assert.ok(await fac.locator(`.room-grid > ${panel}`).isVisible(), `${panel} shows on a desktop`);
    }
    await until(fac, 'the waiting room under People', () => !!document.querySelector('.people #waiting-title'));
    await axe(fac, 'the facilitator’s room on a desktop, after the phone');
    // And back on the phone, the same tab as before.
    await fac.setViewportSize(PHONE);
    await until(fac, 'the waiting room in the Facilitator tab', () => !!document.querySelector('.facilitator #waiting-title'));
    assert.equal(await fac.getByRole('tab', { selected: true }).getAttribute('id'), 'tab-facilitator');

    // A member made co-facilitator gets the Facilitator tab, badge and all; made a member again while
    // on it, they are back on the first tab, and so is the keyboard focus (not lost to the page).
    await openTab(fac, 'People');
    await personAction(fac, 'Sam', 'Make co-facilitator');
    await tab(mem, 'Facilitator, 1 person waiting to join').waitFor();
    await openTab(mem, 'Facilitator');
    await mem.getByRole('tabpanel').getByRole('button', { name: 'Mute all members' }).focus();
    await personAction(fac, 'Sam', 'Make member');
    await until(mem, 'the Facilitator tab gone', () => !document.querySelector('#tab-facilitator:not([hidden])'));
    assert.deepEqual(await chosen(), ['tab-speaking', 'tab-speaking']);

    assert.deepEqual([...dana.errors, ...sam.errors, ...kim.errors], []);
  } finally {
    await browser.close();
  }
});
