// Languages and themes (issue #10, item 18): every piece of text from the catalogue (complete in
// English and Spanish), the language from the browser or the person's own choice, `lang` and `dir`
// on the page, a Spanish and an English person in one meeting each reading their own language, dark
// mode and reduced motion. axe-core and the screenshots cover each screen in both languages and themes
// (lib.mjs `screenshots`, `axe`); here also the dialogs, in Spanish.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CLIENT_URL, PHONE, axe, chooseLanguage, createRoom, launch, person, personAction, screenshots, seeText, until } from './lib.mjs';

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web-client');

/** Opens `url`, joins as `p.name` with the join button's words in the page's language. */
async function enter(p, url, button, { waitFor = '#room-title' } = {}) {
  await p.page.goto(url);
  await p.page.locator('#name').waitFor();
  await p.page.fill('#name', p.name);
  await p.page.getByRole('button', { name: button }).click();
  await p.page.locator(waitFor).first().waitFor();
}

function noErrors(...people) {
  assert.deepEqual(people.flatMap((p) => p.errors), []);
}

// ---- the catalogue ------------------------------------------------------------------------------

const placeholders = (text) => [...String(text).matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

/** Every `.js` file of the client, with its text. */
function clientSources() {
  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && entry.name !== 'locales') walk(path);
      else if (entry.name.endsWith('.js')) files.push([path, readFileSync(path, 'utf8')]);
    }
  };
  walk(CLIENT);
  return files;
}

test('the catalogue: Spanish has every English key with the same placeholders, and every key the client looks up exists', async () => {
  const locales = readdirSync(join(CLIENT, 'locales')).filter((f) => f.endsWith('.js'));
  const catalogues = {};
  for (const file of locales) catalogues[file.replace(/\.js$/, '')] = (await import(pathToFileURL(join(CLIENT, 'locales', file)))).default;
  const en = catalogues.en;
  assert.ok(catalogues.es, 'there is a Spanish catalogue');
  for (const [lang, c] of Object.entries(catalogues)) {
    // Each names itself for the picker and says which way it is written, for <html dir>.
    assert.ok(c['language.name'], `${lang} names itself (language.name)`);
    assert.ok(['ltr', 'rtl'].includes(c['language.dir']), `${lang} says its direction (language.dir)`);
    const missing = Object.keys(en).filter((k) => !(k in c));
    assert.deepEqual(missing, [], `${lang} lacks these keys`);
    const extra = Object.keys(c).filter((k) => !(k in en));
    assert.deepEqual(extra, [], `${lang} has keys English lacks`);
    const differ = Object.keys(en).filter((k) => JSON.stringify(placeholders(en[k])) !== JSON.stringify(placeholders(c[k])));
    assert.deepEqual(differ, [], `${lang}: these keys' placeholders differ from English`);
    const empty = Object.keys(c).filter((k) => !String(c[k]).trim());
    assert.deepEqual(empty, [], `${lang}: these keys are empty`);
    // A key written twice (say, by two areas' sections) silently keeps only the last.
    const written = [...readFileSync(join(CLIENT, 'locales', `${lang}.js`), 'utf8').matchAll(/^\s*'([^']+)':/gm)].map((m) => m[1]);
    const twice = written.filter((k, i) => written.indexOf(k) !== i);
    assert.deepEqual(twice, [], `${lang}: these keys are written twice`);
  }
  // Every key the client looks up with a literal (`t('…')`, `tn('…', n)`) is in the catalogue, with
  // both plural forms for `tn`.
  const unknown = [];
  let looked = 0;
  for (const [path, text] of clientSources()) {
    for (const m of text.matchAll(/\bt\(\s*'([\w.]+)'/g)) {
      looked += 1;
      if (!(m[1] in en)) unknown.push(`${path}: ${m[1]}`);
    }
    for (const m of text.matchAll(/\btn\(\s*'([\w.]+)'/g)) {
      looked += 1;
      for (const form of ['one', 'other']) if (!(`${m[1]}.${form}` in en)) unknown.push(`${path}: ${m[1]}.${form}`);
    }
  }
  assert.deepEqual(unknown, [], 'keys looked up but not in the catalogue');
  assert.ok(looked > 300, `the client's text comes from the catalogue (${looked} look-ups)`);
});

// ---- Spanish from the browser, and two languages in one meeting ---------------------------------

test('a Spanish browser gets Spanish; a Spanish and an English person in one meeting each read their own language', async () => {
  const browser = await launch({ args: ['--lang=es'] });
  try {
    const lucia = await person(browser, 'Lucía', { locale: 'es-MX' });
    const dana = await person(browser, 'Dana', { locale: 'en-US' });
    // The start page, chosen from the browser's language.
    await lucia.page.goto(`${CLIENT_URL}/`);
    await seeText(lucia.page, 'h1', 'Crear una reunión');
    assert.deepEqual(await lucia.page.evaluate(() => [document.documentElement.lang, document.documentElement.dir, document.title]), [
      'es',
      'ltr',
      'Circle: crear una reunión',
    ]);
    assert.equal(await lucia.page.locator('#language').inputValue(), 'es', 'the picker shows the language in use');

    const room = await createRoom('Grupo de los martes', { waiting_room: true });
    // Dana facilitates, in English.
    await enter(dana, room.facilitator_url, 'Join muted', { waitFor: '#fac-title' });
    await seeText(dana.page, '#fac-title', 'Running the meeting');
    assert.equal(await dana.page.evaluate(() => document.documentElement.lang), 'en');

    // Lucía joins in Spanish and waits, then is let in.
    await enter(lucia, room.join_url, 'Entrar con el micrófono apagado', { waitFor: 'h1' });
    await seeText(lucia.page, 'h1', 'Quien facilita te dará paso pronto');
    await seeText(lucia.page, '.card', 'Estás en la sala de espera como «Lucía»');
    await seeText(dana.page, '#waiting-title', 'Waiting room (1)');
    await dana.page.getByRole('button', { name: 'Admit Lucía' }).click();
    await lucia.page.locator('#room-title').waitFor();

    // Each reads the room in their own language; names and the meeting's title are as given.
    await seeText(lucia.page, '#speaking-title', 'Turno de palabra');
    await seeText(lucia.page, '[data-key="hand"]', 'Levantar mano');
    await seeText(lucia.page, '#room-title', 'Grupo de los martes');
    await seeText(dana.page, '[data-key="hand"]', 'Raise hand');
    await seeText(lucia.page, '.counts-text', '1 miembro · 1 persona que facilita');
    await seeText(dana.page, '.counts-text', '1 member · 1 facilitator');
    await seeText(lucia.page, '.person.is-me .person-name', 'Lucía (tú)');
    await seeText(dana.page, '.person', 'Lucía');
    await seeText(lucia.page, '#mic-note', 'Esperando tu turno de palabra');

    // Chat: what people write reaches the other unchanged, around each one's own words.
    await lucia.page.fill('#chat-input', 'Hola a todos, gracias por estar aquí.');
    await lucia.page.getByRole('button', { name: 'Enviar', exact: true }).click();
    await seeText(dana.page, '.msg-text', 'Hola a todos, gracias por estar aquí.');
    await dana.page.fill('#chat-input', 'Welcome, Lucía.');
    await dana.page.getByRole('button', { name: 'Send', exact: true }).click();
    await seeText(lucia.page, '.msg-text', 'Welcome, Lucía.');
    await seeText(lucia.page, '#chat-to-hint', 'Lo verán todas las personas de la reunión.');
    await seeText(dana.page, '#chat-to-hint', 'Everyone in the meeting will see this.');

    // A raised hand: Dana reads it in English, Lucía in Spanish.
    await lucia.page.getByRole('button', { name: 'Levantar mano' }).click();
    await seeText(lucia.page, '#queue-title', 'Manos levantadas (1)');
    await seeText(dana.page, '#queue-title', 'Raised hands (1)');
    await seeText(dana.page, '.queue', 'Lucía');

    // The screen readers' words too.
    await dana.page.getByRole('button', { name: 'Give floor to Lucía' }).click();
    await until(lucia.page, 'the Spanish announcement', () => document.getElementById('announcer').textContent.includes('Tienes la palabra.'));
    await seeText(lucia.page, '.floor-label', 'Tienes la palabra');
    await seeText(dana.page, '.floor-label', 'Has the floor');

    // Spanish dialogs: axe in both themes, and their screenshots.
    await lucia.page.getByRole('button', { name: 'Atajos de teclado' }).click();
    await seeText(lucia.page, '#confirm-title', 'Atajos de teclado');
    await screenshots(lucia.page, 'i18n-shortcuts-dialog');
    await lucia.page.getByRole('button', { name: 'Cerrar' }).click();
    await lucia.page.getByRole('button', { name: 'Ajustes de sonido' }).click();
    await seeText(lucia.page, '#confirm-title', 'Ajustes de sonido');
    await axe(lucia.page, 'the sound settings in Spanish');
    await lucia.page.getByRole('button', { name: 'Cerrar' }).click();
    await lucia.page.getByRole('button', { name: 'Salir', exact: true }).click();
    await seeText(lucia.page, '#confirm-title', '¿Salir de la reunión?');
    await screenshots(lucia.page, 'i18n-leave-dialog');
    await lucia.page.getByRole('button', { name: 'Quedarme' }).click();
    noErrors(lucia, dana);
  } finally {
    await browser.close();
  }
});

// ---- the picker ---------------------------------------------------------------------------------

test('the language picker switches the page live, inside the meeting, and is remembered on this device', async () => {
  const browser = await launch();
  try {
    const room = await createRoom('Thursday circle', { waiting_room: false });
    const sam = await person(browser, 'Sam', { locale: 'en-GB' });
    const kim = await person(browser, 'Kim');
    await enter(sam, room.facilitator_url, 'Join muted', { waitFor: '#fac-title' });
    await enter(kim, room.join_url, 'Join muted');
    await kim.page.fill('#chat-input', 'A draft, not sent yet');
    await seeText(sam.page, '.roster', 'Kim');
    const me = await sam.page.evaluate(() => window.__circle.state.you);

    // Sam picks Spanish: the room is drawn again in Spanish, still in the same meeting.
    await chooseLanguage(sam.page, 'es', { focus: true });
    await seeText(sam.page, '#fac-title', 'Facilitar la reunión');
    await seeText(sam.page, '#speaking-title', 'Turno de palabra');
    await seeText(sam.page, '.roster', 'Kim');
    assert.equal(await sam.page.evaluate(() => window.__circle.state.you), me, 'the same place in the meeting');
    assert.deepEqual(await sam.page.evaluate(() => [document.documentElement.lang, document.documentElement.dir]), ['es', 'ltr']);
    assert.equal(await sam.page.evaluate(() => document.activeElement?.id), 'language', 'the focus stays on the picker');
    // Kim's page did not change.
    await seeText(kim.page, '#speaking-title', 'Speaking');
    // A facilitator's menu in Spanish: the actions and the confirmation.
    await personAction(sam.page, 'Kim', 'Retirar de la reunión…');
    await seeText(sam.page, '#confirm-title', '¿Retirar a Kim?');
    await axe(sam.page, 'the remove confirmation in Spanish');
    await sam.page.getByRole('button', { name: 'Cancelar' }).click();

    // Kim switches while typing: the draft stays.
    await chooseLanguage(kim.page, 'es');
    await seeText(kim.page, '[data-key="hand"]', 'Levantar mano');
    assert.equal(await kim.page.inputValue('#chat-input'), 'A draft, not sent yet');

    // Remembered: a reload (which resumes the meeting) comes back in Spanish.
    await sam.page.reload();
    await seeText(sam.page, '#fac-title', 'Facilitar la reunión');
    assert.equal(await sam.page.evaluate(() => localStorage.getItem('circle.language')), 'es');

    // And back to English.
    await chooseLanguage(sam.page, 'en');
    await seeText(sam.page, '#fac-title', 'Running the meeting');
    assert.equal(await sam.page.evaluate(() => document.documentElement.lang), 'en');

    // On the start page too, with what was typed kept.
    const page = await sam.context.newPage();
    await page.goto(`${CLIENT_URL}/`);
    await seeText(page, 'h1', 'Start a meeting');
    await page.fill('#title', 'Sunday circle');
    await chooseLanguage(page, 'es');
    await seeText(page, 'h1', 'Crear una reunión');
    assert.equal(await page.inputValue('#title'), 'Sunday circle');
    await page.close();
    noErrors(sam, kim);
  } finally {
    await browser.close();
  }
});

// ---- every screen, in both languages and themes -------------------------------------------------

test('every screen in both languages and themes, desktop and phone: denied, removed, ended, the facilitator on a phone', async () => {
  const browser = await launch();
  try {
    const room = await createRoom('Saturday circle', { waiting_room: true });
    const dana = await person(browser, 'Dana', { viewport: PHONE });
    const ana = await person(browser, 'Ana');
    const lee = await person(browser, 'Lee', { locale: 'es-ES' });
    await enter(dana, room.facilitator_url, 'Join muted');
    await enter(ana, room.join_url, 'Join muted', { waitFor: 'h1' });
    await enter(lee, room.join_url, 'Entrar con el micrófono apagado', { waitFor: 'h1' });
    // On a phone the waiting room is in the facilitator's own tab (phone.test.mjs).
    await dana.page.getByRole('tab', { name: /^Facilitator/ }).click();
    await seeText(dana.page, '#waiting-title', 'Waiting room (2)');
    await screenshots(dana.page, 'i18n-facilitator-phone-waiting');

    // Lee is not let in: the denied screen.
    await dana.page.getByRole('button', { name: 'Deny Lee' }).click();
    await seeText(lee.page, 'h1', 'Esta vez no se te dio acceso');
    await screenshots(lee.page, 'i18n-denied');

    // Ana is let in, then removed.
    await dana.page.getByRole('button', { name: 'Admit Ana' }).click();
    await ana.page.locator('#room-title').waitFor();
    await dana.page.getByRole('tab', { name: /^People/ }).click();
    await personAction(dana.page, 'Ana', 'Remove from meeting…');
    await dana.page.getByRole('button', { name: 'Remove', exact: true }).click();
    await seeText(ana.page, 'h1', 'You are no longer in this meeting');
    await screenshots(ana.page, 'i18n-removed');

    // The end, for the facilitator, on a phone.
    await dana.page.getByRole('tab', { name: /^Facilitator/ }).click();
    await dana.page.getByRole('button', { name: 'End the meeting', exact: true }).click();
    await dana.page.locator('#confirm').getByRole('button', { name: 'End the meeting' }).click();
    await seeText(dana.page, 'h1', 'The meeting has ended');
    await screenshots(dana.page, 'i18n-ended-phone');
    noErrors(dana, ana, lee);
  } finally {
    await browser.close();
  }
});

// ---- dark mode and reduced motion ---------------------------------------------------------------

test('dark mode follows the device, and reduced motion stops everything that moves', async () => {
  const browser = await launch();
  try {
    const room = await createRoom('Evening circle', { waiting_room: true, share_secs: 120 });
    const fran = await person(browser, 'Fran');
    const page = fran.page;
    const background = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    const surface = () => page.evaluate(() => getComputedStyle(document.querySelector('.card')).backgroundColor);

    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto(room.join_url);
    await page.locator('#name').waitFor();
    assert.equal(await background(), 'rgb(245, 244, 240)');
    await page.emulateMedia({ colorScheme: 'dark' });
    assert.equal(await background(), 'rgb(22, 24, 27)', 'a dark page in dark mode');
    assert.equal(await surface(), 'rgb(31, 34, 38)', 'dark cards in dark mode');
    // The form's own controls are drawn dark too, and the text is light.
    assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).colorScheme), 'dark');
    assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).color), 'rgb(232, 230, 225)');
    await axe(page, 'the join page');

    // Reduced motion: no animation and no transition anywhere on the page (the microphone meter,
    // the waiting room's breathing circle, the share timer's bar).
    const moving = () =>
      page.evaluate(() =>
        [...document.querySelectorAll('*')]
          .filter((el) => {
            const s = getComputedStyle(el);
            const still = (list) => list.split(',').every((d) => parseFloat(d) === 0);
            return s.animationName !== 'none' || !still(s.transitionDuration);
          })
          .map((el) => el.className || el.tagName),
      );
    await page.emulateMedia({ colorScheme: 'light', reducedMotion: 'no-preference' });
    assert.ok((await moving()).length > 0, 'without the preference, the meter moves smoothly');
    await page.emulateMedia({ reducedMotion: 'reduce' });
    assert.deepEqual(await moving(), [], 'on the join page');
    await page.fill('#name', 'Fran');
    await page.getByRole('button', { name: 'Join muted' }).click();
    // No facilitator has come yet: the waiting room says so (PROTOCOL.md §6.9).
    await seeText(page, 'h1', 'No facilitator is here yet');
    assert.deepEqual(await moving(), [], 'in the waiting room');
    noErrors(fran);
  } finally {
    await browser.close();
  }
});
