// Small DOM helpers shared by the views: element building, redraws that keep keyboard focus, the
// screen-reader announcer, the confirmation dialog, copying to the clipboard.
//
// User text (names, chat, titles) only ever enters the page as text nodes or attribute values, never
// as HTML. The page's own words come from the catalogue (`t`, ../i18n.js).

import { language, languages, locales, setLanguage, t } from '../i18n.js';

/**
 * Builds an element. `props`: `class`, `key` (a stable key: focus and open disclosures survive
 * redraws), `on<event>` listeners, `true` for boolean attributes, other strings as attributes;
 * `null`/`false`/`undefined` skip. Children: nodes, strings, arrays, and null/false (skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'key') el.dataset.key = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/**
 * Replaces a container's children, unless the new content is the same (then nothing moves). Keeps
 * keyboard focus where it was: on the element with the same `key` (or id); if that is gone, on the
 * nearest keyed item of the same list (after "Admit", the next person's "Admit"); else on the first
 * of `fallback` (element ids, looked up after the redraw) that is there. Never on a disabled control:
 * a keyboard user is never dropped to the top of the page. `details` with a `key` stay open.
 */
export function swap(container, children, { force = false, fallback = [] } = {}) {
  const next = document.createElement(container.tagName);
  append(next, [children]);
  if (!force && next.innerHTML === container.innerHTML) return false;
  const active = document.activeElement;
  const hadFocus = active && active !== container && container.contains(active);
  let want = [];
  if (hadFocus) {
    const keyed = active.closest('[data-key]');
    const list = keyed?.closest('ul, ol');
    const siblings = list && container.contains(list) ? [...list.querySelectorAll('[data-key]')].map((e) => e.dataset.key) : [];
    const at = siblings.indexOf(keyed?.dataset.key);
    want = [
      keyed && { key: keyed.dataset.key },
      active.id && { id: active.id },
      ...siblings.slice(at + 1).map((key) => ({ key })),
      ...siblings.slice(0, Math.max(0, at)).reverse().map((key) => ({ key })),
      ...[fallback].flat().map((id) => ({ id })),
    ].filter(Boolean);
  }
  const open = [...container.querySelectorAll('details[open][data-key]')].map((d) => d.dataset.key);
  container.replaceChildren(...next.childNodes);
  for (const key of open) byKey(container, key)?.setAttribute('open', '');
  for (const w of want) {
    const el = w.key ? byKey(container, w.key) : document.getElementById(w.id);
    if (!el || el.disabled || el.closest('[hidden], details:not([open]) > :not(summary)')) continue;
    el.focus({ preventScroll: true });
    if (document.activeElement === el) break;
  }
  return true;
}

function byKey(root, key) {
  return root.querySelector(`[data-key="${CSS.escape(key)}"]`);
}

/** What the page says while the server restarts under a standing room's meeting. */
export function restartingText() {
  return t('status.restarting');
}

/** The connection line's words for a session status ('open' shows nothing). */
export function statusText(status) {
  if (status === 'reconnecting') return t('status.reconnecting');
  if (status === 'restarting') return restartingText();
  return '';
}

/**
 * The language picker (each language named in its own words); a choice is kept on this device, and
 * the screen is drawn again in it (app.js, on `circle-language`). One per page: its id is `language`.
 */
export function languagePicker() {
  return h(
    'div',
    { class: 'language' },
    h('label', { for: 'language' }, t('language.label')),
    h(
      'select',
      { id: 'language', key: 'language', onchange: (ev) => setLanguage(ev.target.value, { remember: true }) },
      languages().map(([code, name]) => h('option', { value: code, lang: code, selected: code === language() }, name)),
    ),
  );
}

/** Says something to screen readers (and keeps the last few lines, which the tests read too). */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region || !text) return;
  region.append(h('p', null, text));
  while (region.childElementCount > 6) region.firstElementChild.remove();
}

/**
 * Asks for confirmation in a modal dialog. Resolves to true if confirmed. `danger` styles the
 * confirming button as destructive; focus starts on "Cancel" so Enter never destroys by accident.
 */
export function confirmDialog({ title, body, confirm, cancel = t('dialog.cancel'), danger = false }) {
  const dialog = document.getElementById('confirm');
  const heading = h('h2', { id: 'confirm-title' }, title);
  const cancelBtn = h('button', { type: 'button', class: 'btn', value: 'cancel' }, cancel);
  const okBtn = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary', value: 'ok' }, confirm);
  dialog.replaceChildren(
    heading,
    h('p', { id: 'confirm-body' }, body),
    h('div', { class: 'dialog-actions' }, cancelBtn, okBtn),
  );
  dialog.setAttribute('aria-labelledby', 'confirm-title');
  dialog.setAttribute('aria-describedby', 'confirm-body');
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const done = (ok) => {
      dialog.close();
      resolve(ok);
    };
    cancelBtn.addEventListener('click', () => done(false));
    okBtn.addEventListener('click', () => done(true));
    dialog.addEventListener('cancel', () => resolve(false), { once: true });
    dialog.addEventListener('close', () => opener?.isConnected && opener.focus(), { once: true });
    dialog.showModal();
    cancelBtn.focus();
  });
}

/**
 * Shows `content` in the modal dialog under `title`, with a Close button; resolves when it closes
 * (focus goes back where it was).
 */
export function infoDialog({ title, content, onClose }) {
  const dialog = document.getElementById('confirm');
  const closeBtn = h('button', { type: 'button', class: 'btn btn-primary' }, t('dialog.close'));
  dialog.replaceChildren(h('h2', { id: 'confirm-title' }, title), h('div', { id: 'confirm-body' }, content), h('div', { class: 'dialog-actions' }, closeBtn));
  dialog.setAttribute('aria-labelledby', 'confirm-title');
  dialog.removeAttribute('aria-describedby');
  const opener = document.activeElement;
  return new Promise((resolve) => {
    closeBtn.addEventListener('click', () => dialog.close());
    dialog.addEventListener(
      'close',
      () => {
        onClose?.();
        if (opener?.isConnected) opener.focus();
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
    (dialog.querySelector('select, input, button:not(.btn-primary)') ?? closeBtn).focus();
  });
}

/** Copies text; resolves to true on success. */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Older browsers, or no clipboard permission: select the text and use the legacy command.
    if (!input) return false;
    input.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
}

/** A small inline icon (decorative: the text next to it says the same). */
export function icon(name) {
  const paths = ICONS[name];
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', `icon icon-${name}`);
  for (const d of paths) {
    const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

const ICONS = {
  mic: ['M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z', 'M5 11a7 7 0 0 0 14 0', 'M12 18v3'],
  'mic-off': ['M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z', 'M5 11a7 7 0 0 0 14 0', 'M12 18v3', 'M4 4l16 16'],
  hand: [
    'M8 12V6.5a1.5 1.5 0 0 1 3 0V11',
    'M11 11V4.5a1.5 1.5 0 0 1 3 0V11',
    'M14 11V6a1.5 1.5 0 0 1 3 0v7',
    'M8 12a1.5 1.5 0 0 0-3 0v1c0 4.5 3 8 7.5 8s5.5-3.5 5.5-7v-1',
  ],
  lock: ['M6 11h12v10H6z', 'M8.5 11V8a3.5 3.5 0 0 1 7 0v3'],
  chat: ['M4 5h16v11H9l-5 4z'],
  people: ['M9 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6z', 'M3 20a6 6 0 0 1 12 0', 'M16 11a2.5 2.5 0 1 0 0-5', 'M17 14.5a5 5 0 0 1 4 5.5'],
  clock: ['M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z', 'M12 7v5l3 2'],
  speaker: ['M4 9h4l5-4v14l-5-4H4z', 'M16.5 8.5a5 5 0 0 1 0 7', 'M19 6a8.5 8.5 0 0 1 0 12'],
};

/** "2:05" for 125000 ms. */
export function formatDuration(ms) {
  const total = Math.ceil(ms / 1000);
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${m}:${String(s).padStart(2, '0')}`;
}

/** "14:05", in the reader's own locale (for the page's language). */
export function formatTime(ms) {
  return new Date(ms).toLocaleTimeString(locales(), { hour: '2-digit', minute: '2-digit' });
}

/**
 * When something happens, in the reader's own time and locale, as few words as are clear: "at 18:45"
 * today, "tomorrow at 18:45", "on Thursday at 18:45" within a week, else "on 12 March at 18:45".
 */
export function formatWhen(ms, now = Date.now()) {
  const at = new Date(ms);
  const time = formatTime(ms);
  const day = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((day(at) - day(new Date(now))) / 86_400_000);
  if (days <= 0) return t('when.today', { time });
  if (days === 1) return t('when.tomorrow', { time });
  if (days < 7) return t('when.weekday', { day: at.toLocaleDateString(locales(), { weekday: 'long' }), time });
  return t('when.date', { date: at.toLocaleDateString(locales(), { day: 'numeric', month: 'long' }), time });
}
