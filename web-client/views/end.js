// The end screens: the meeting ended, you left, or a facilitator removed you (in the server's words).

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
      text.rejoin && onRejoin
        ? h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: onRejoin }, 'Rejoin the meeting'))
        : null,
    ),
  );
  return { el: main, focus: () => main.querySelector('h1').focus(), destroy() {} };
}
