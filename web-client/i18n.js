// Every piece of text a person reads comes from a message catalogue (locales/*.js), looked up by key.
// English is complete and is the fallback for a key another language lacks. Placeholders are
// written {name} in the catalogue and filled from `params`. Plurals are two keys, `KEY.one` and
// `KEY.other` (and any other category of Intl.PluralRules a language needs), looked up with `tn`.
//
// The language is this device's own choice, kept in localStorage (it is not meeting data); until
// the person chooses, it follows the browser's languages. Each catalogue names itself
// (`language.name`) and its writing direction (`language.dir`: "ltr" or "rtl"), which the page's
// <html lang dir> follow. To add a language: a new locales/XX.js with every key of en.js, and one
// line in CATALOGUES below.

import en from './locales/en.js';
import es from './locales/es.js';

const CATALOGUES = { en, es };
const STORE_KEY = 'circle.language';

let current = initial();
applyToPage();

function initial() {
  try {
    const saved = localStorage.getItem(STORE_KEY);
    if (saved && saved in CATALOGUES) return saved;
  } catch {
    // Storage turned off: follow the browser.
  }
  return fromBrowser(globalThis.navigator?.languages ?? []);
}

/** The first of the browser's languages we have a catalogue for ("es-MX" → "es"), else English. */
export function fromBrowser(languages) {
  for (const tag of languages) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (base in CATALOGUES) return base;
  }
  return 'en';
}

/** The text for `key` in the current language, with `{placeholders}` filled from `params`. */
export function t(key, params = {}) {
  const text = CATALOGUES[current][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/**
 * The text for `count` of something: `KEY.one`, `KEY.other`... as Intl.PluralRules says for the
 * current language, with `{count}` (and `params`) filled in.
 */
export function tn(key, count, params = {}) {
  const rule = new Intl.PluralRules(current).select(count);
  const catalogue = CATALOGUES[current];
  const which = `${key}.${rule}` in catalogue || `${key}.${rule}` in en ? `${key}.${rule}` : `${key}.other`;
  return t(which, { count, ...params });
}

/** Whether the catalogue has `key` (for codes the server may send that the client has no words for). */
export function has(key) {
  return key in en;
}

/** The language in use ("en" or "es"). */
export function language() {
  return current;
}

/** The languages there are, as `[code, own name]` ("es", "Español"), for the picker. */
export function languages() {
  return Object.entries(CATALOGUES).map(([code, c]) => [code, c['language.name'] ?? code]);
}

/** The locales for dates and times: the browser's own when it reads this language, else the language. */
export function locales() {
  const own = (globalThis.navigator?.languages ?? []).filter((tag) => tag.toLowerCase().split('-')[0] === current);
  return [...own, current];
}

/**
 * Switches the language for text looked up from now on (unknown languages are ignored), sets the
 * page's lang and dir, and, when `remember`, keeps the choice on this device. Fires
 * `circle-language` on window, so that the screen on show is drawn again in the new language.
 */
export function setLanguage(lang, { remember = false } = {}) {
  if (!(lang in CATALOGUES)) return;
  const changed = lang !== current;
  current = lang;
  if (remember) {
    try {
      localStorage.setItem(STORE_KEY, lang);
    } catch {
      // Storage turned off: the choice lasts for this page.
    }
  }
  applyToPage();
  if (changed) globalThis.dispatchEvent?.(new CustomEvent('circle-language', { detail: lang }));
}

function applyToPage() {
  const root = globalThis.document?.documentElement;
  if (!root) return;
  root.lang = current;
  root.dir = CATALOGUES[current]['language.dir'] ?? 'ltr';
}
