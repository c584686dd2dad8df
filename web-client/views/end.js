// The end screens: the meeting ended, you left, or a facilitator removed you (in the server's words),
// each with what you can do next, and the organisation's own support line when config.js has one.

// A namespace import: a config.js from an older release, without the optional settings, still loads.
import * as config from '../config.js';
import { t } from '../i18n.js';
import { brand } from './start.js';
import { h } from './dom.js';
import { endText } from './messages.js';

export function endView({ end, onRejoin }) {
  const text = endText(end);
  const main = h(
    'main',
    { id: 'main', class: 'page page-narrow' },
    brand(),
    h(
      'section',
      { class: 'card end', 'aria-labelledby': 'end-title' },
      h('h1', { id: 'end-title', tabindex: '-1' }, text.title),
      h('p', { class: 'end-message' }, text.body),
      text.next ? h('p', { class: 'end-next' }, text.next) : null,
      text.rejoin && onRejoin
        ? h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: onRejoin }, text.rejoinLabel ?? t('end.rejoin')))
        : null,
    ),
    supportCard(),
  );
  return { el: main, focus: () => main.querySelector('h1').focus(), destroy() {} };
}

/** The organisation's support line (config.js SUPPORT_TEXT, SUPPORT_URL), or nothing. */
export function supportCard() {
  const text = String(config.SUPPORT_TEXT ?? '').trim();
  if (!text) return null;
  const url = safeUrl(config.SUPPORT_URL);
  return h(
    'aside',
    { class: 'card support', 'aria-labelledby': 'support-title' },
    h('h2', { id: 'support-title' }, t('end.support')),
    h('p', null, url ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, text) : text),
  );
}

// Only web and phone links: a mistyped setting must not become a script link.
function safeUrl(value) {
  const s = String(value ?? '').trim();
  if (!s) return null;
  try {
    const u = new URL(s, location.href);
    return ['https:', 'http:', 'tel:', 'mailto:'].includes(u.protocol) ? u.href : null;
  } catch {
    return null;
  }
}
