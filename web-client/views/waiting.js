// The waiting room: the title and a kind word, and nothing of the room.

import { brand } from './start.js';
import { h } from './dom.js';

export function waitingView({ state, session, onLeave }) {
  const status = h('p', { class: 'connection', role: 'status' });
  const main = h(
    'main',
    { id: 'main', class: 'page page-narrow' },
    brand(),
    h(
      'section',
      { class: 'card waiting', 'aria-labelledby': 'waiting-title' },
      h('p', { class: 'eyebrow' }, state.title),
      h('h1', { id: 'waiting-title', tabindex: '-1' }, 'The facilitator will let you in soon'),
      h('div', { class: 'waiting-pulse', 'aria-hidden': 'true' }),
      h('p', null, `You are in the waiting room as “${state.me?.name ?? ''}”. No one in the meeting can see or hear you here.`),
      h('p', { class: 'hint' }, 'Keep this page open. It changes by itself when you are let in.'),
      status,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: onLeave }, 'Leave the waiting room')),
    ),
  );
  const setStatus = (s) => {
    status.textContent = s === 'reconnecting' ? 'Reconnecting…' : '';
    status.classList.toggle('is-reconnecting', s === 'reconnecting');
  };
  setStatus(session.status);
  return {
    el: main,
    focus: () => main.querySelector('h1').focus(),
    update() {},
    setStatus,
    destroy() {},
  };
}
