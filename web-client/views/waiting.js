// The waiting room: the title and a kind word, and nothing of the room. Before a standing room's open
// time it says, calmly, when the meeting opens (in the member's own time); the server lets them in
// then, and the page changes by itself.

import { t } from '../i18n.js';
import { brand } from './start.js';
import { formatWhen, h, statusText } from './dom.js';

export function waitingView({ state, session, onLeave }) {
  const status = h('p', { class: 'connection', role: 'status' });
  const heading = h('h1', { id: 'waiting-title', tabindex: '-1' });
  const words = h('p', { class: 'waiting-when' });
  const main = h(
    'main',
    { id: 'main', class: 'page page-narrow' },
    brand(),
    h(
      'section',
      { class: 'card waiting', 'aria-labelledby': 'waiting-title' },
      h('p', { class: 'eyebrow' }, state.title),
      heading,
      h('div', { class: 'waiting-pulse', 'aria-hidden': 'true' }),
      words,
      h('p', null, t('waiting.as', { name: state.me?.name ?? '' })),
      h('p', { class: 'hint' }, t('waiting.keep_open')),
      status,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: onLeave }, t('waiting.leave'))),
    ),
  );
  let opensTimer = 0;
  // What the heading says: the open time while it is ahead, else that a facilitator lets you in.
  const render = () => {
    clearTimeout(opensTimer);
    const left = state.opensAt == null ? 0 : state.opensAt - state.serverNow();
    if (left > 0) {
      const when = formatWhen(state.opensAt - state.clockOffset);
      heading.textContent = t('waiting.not_started');
      words.textContent = t('waiting.opens', { when });
      words.hidden = false;
      // At the open time the server lets you in; should it only open the doors (a facilitator
      // admits each person), the words here change then too.
      opensTimer = setTimeout(render, Math.min(left + 500, 2 ** 31 - 1));
    } else {
      heading.textContent = t('waiting.soon');
      words.textContent = '';
      words.hidden = true;
    }
  };
  const setStatus = (s) => {
    status.textContent = statusText(s);
    status.classList.toggle('is-reconnecting', s === 'reconnecting' || s === 'restarting');
  };
  render();
  setStatus(session.status);
  return {
    el: main,
    focus: () => heading.focus(),
    update: render,
    setStatus,
    destroy() {
      clearTimeout(opensTimer);
    },
  };
}
