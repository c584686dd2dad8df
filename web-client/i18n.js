// Every piece of text a person reads comes from a message catalogue (locales/*.js), looked up by key.
// English is complete and is the fallback for a key another language lacks. Placeholders are
// written {name} in the catalogue and filled from `params`.

import en from './locales/en.js';
import es from './locales/es.js';

const CATALOGUES = { en, es };
let current = 'en';

/** The text for `key` in the current language, with `{placeholders}` filled from `params`. */
export function t(key, params = {}) {
  const text = CATALOGUES[current][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** The language in use ("en" or "es"). */
export function language() {
  return current;
}

/** Switches the language for text looked up from now on (unknown languages are ignored). */
export function setLanguage(lang) {
  if (lang in CATALOGUES) current = lang;
}
