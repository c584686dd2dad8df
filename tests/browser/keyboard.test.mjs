// The room with the keyboard alone, and a reload that comes back to the same place.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { axe, createRoom, expectQueue, launch, person, row, seeText, until } from './lib.mjs';

/** Presses Tab until the focused element matches `selector` (fails after `max` presses). */
async function tabTo(page, selector, max = 80) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
  }
  const at = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 120));
  throw new Error(`Tab never reached ${selector} (focus is on ${at})`);
}

test('keyboard alone: join, raise a hand, chat, a facilitator mutes from the roster; a reload resumes', async () => {
  const room = await createRoom('Keyboard circle', { waiting_room: false, mute_on_entry: false });
  const browser = await launch();
  try {
    const dana = await person(browser, 'Dana');
    const sam = await person(browser, 'Sam');
    for (const [p, url] of [
      [dana, room.facilitator_url],
      [sam, room.join_url],
    ]) {
      await p.page.goto(url);
      await seeText(p.page, 'h1', 'Keyboard circle');
      await tabTo(p.page, '#name');
      await p.page.keyboard.type(p.name);
      await p.page.keyboard.press('Enter');
      await seeText(p.page, '#room-title', 'Keyboard circle');
    }

    await axe(dana.page, 'the facilitator’s room');
    await axe(sam.page, 'the member’s room');

    await tabTo(sam.page, '[data-key="hand"]');
    await sam.page.keyboard.press('Enter');
    await expectQueue(dana.page, ['Sam']);

    await tabTo(sam.page, '#chat-input');
    await sam.page.keyboard.type('Hello from the keyboard');
    await sam.page.keyboard.press('Enter');
    await seeText(dana.page, '.msg', 'Hello from the keyboard');

    // The facilitator opens Sam's actions, mutes him, and Escape closes the menu again.
    await tabTo(dana.page, 'summary[aria-label="Actions for Sam"]');
    await dana.page.keyboard.press('Enter');
    await tabTo(dana.page, '.menu-item[data-key^="mute-"]', 10);
    await dana.page.keyboard.press('Enter');
    await row(sam.page, 'Sam').locator('.badge', { hasText: 'Muted by facilitator' }).waitFor();
    assert.ok(await dana.page.evaluate(() => document.activeElement.matches('summary[aria-label="Actions for Sam"]')));
    await dana.page.keyboard.press('Enter');
    assert.ok(await dana.page.locator('details.person-actions[open]').count());
    await dana.page.keyboard.press('Escape');
    assert.equal(await dana.page.locator('details.person-actions[open]').count(), 0);

    // A reload comes back with the resume token: same person, same hand, same mute.
    await sam.page.reload();
    await seeText(sam.page, '#room-title', 'Keyboard circle');
    await expectQueue(sam.page, ['Sam']);
    await row(sam.page, 'Sam').locator('.badge', { hasText: 'Muted by facilitator' }).waitFor();
    await until(dana.page, 'Sam to be back', () => !document.querySelector('.person.is-reconnecting'));
    assert.equal(await dana.page.locator('.roster .person').count(), 2);

    await tabTo(sam.page, '[data-key="leave"]');
    await sam.page.keyboard.press('Enter');
    // Leaving asks first; focus starts on "Stay", so Enter alone never leaves.
    await seeText(sam.page, '#confirm-title', 'Leave the meeting?');
    assert.equal(await sam.page.evaluate(() => document.activeElement.textContent), 'Stay');
    await sam.page.keyboard.press('Tab');
    await sam.page.keyboard.press('Enter');
    await seeText(sam.page, 'h1', 'You left the meeting');
    await row(dana.page, 'Sam').waitFor({ state: 'detached' });
    assert.deepEqual([...dana.errors, ...sam.errors], []);
  } finally {
    await browser.close();
  }
});
