// The facilitator's controls: the waiting list, the floor and the queue, each person's actions, room
// settings and the end of the meeting. Drawn inside the room view; every handler reads the model at
// click time, so a redraw never leaves a stale button behind.

import { t } from '../i18n.js';
import { announce, copyText, h } from './dom.js';

const TIMER_CHOICES = [
  [0, 'No timer'],
  [60, '1 minute'],
  [120, '2 minutes'],
  [180, '3 minutes'],
  [300, '5 minutes'],
  [600, '10 minutes'],
];
const WARNING_CHOICES = [
  [10, '10 seconds'],
  [15, '15 seconds'],
  [30, '30 seconds'],
  [60, '1 minute'],
];

/** The waiting room list, at the top of "People". */
export function waitingList({ state, act }) {
  const waiting = state.waitingList();
  return h(
    'div',
    { class: `waiting-list${waiting.length ? ' has-waiting' : ''}` },
    h(
      'div',
      { class: 'section-head' },
      h('h2', { id: 'waiting-title', tabindex: '-1' }, `Waiting room (${waiting.length})`),
      waiting.length > 1
        ? h('button', { type: 'button', class: 'btn btn-small btn-primary', key: 'admit-all', onclick: () => act('admit_all') }, 'Admit all')
        : null,
    ),
    waiting.length
      ? h(
          'ul',
          { class: 'plain-list', 'aria-labelledby': 'waiting-title' },
          waiting.map((p) =>
            h(
              'li',
              { class: 'waiting-item', key: `w-${p.id}` },
              h('span', { class: 'person-name' }, p.name),
              h(
                'span',
                { class: 'button-row' },
                h(
                  'button',
                  { type: 'button', class: 'btn btn-small btn-primary', key: `admit-${p.id}`, onclick: () => act('admit', { participant: p.id }) },
                  'Admit',
                  hidden(` ${p.name}`),
                ),
                h(
                  'button',
                  { type: 'button', class: 'btn btn-small', key: `deny-${p.id}`, onclick: () => act('deny', { participant: p.id }) },
                  'Deny',
                  hidden(` ${p.name}`),
                ),
              ),
            ),
          ),
        )
      : h('p', { class: 'empty' }, 'No one is waiting.'),
  );
}

/** Next speaker, take the floor back, lower all hands. */
export function floorControls({ state, act }) {
  const hasQueue = state.floor.queue.length > 0;
  const speaker = state.floor.speaker;
  return h(
    'div',
    { class: 'button-row floor-controls' },
    h(
      'button',
      { type: 'button', class: 'btn btn-small btn-primary', key: 'next-speaker', disabled: !hasQueue, onclick: () => act('next_speaker') },
      'Next speaker',
    ),
    h(
      'button',
      { type: 'button', class: 'btn btn-small', key: 'take-floor', disabled: !speaker, onclick: () => act('take_floor') },
      'Take the floor back',
    ),
    h(
      'button',
      { type: 'button', class: 'btn btn-small', key: 'lower-all', disabled: !hasQueue, onclick: () => act('lower_all_hands') },
      'Lower all hands',
    ),
  );
}

/** Give the floor, move up / down, lower the hand: for one queue entry. */
export function queueActions({ act }, entry, index, length) {
  const id = entry.participant;
  const name = entry.name;
  return h(
    'span',
    { class: 'button-row queue-actions' },
    // Each name is the visible text plus words only a screen reader needs (WCAG 2.5.3: the
    // accessible name contains the label you see); the arrows are symbols, read as words.
    h('button', { type: 'button', class: 'btn btn-small', key: `qg-${id}`, onclick: () => act('give_floor', { participant: id }) }, 'Give floor', hidden(` to ${name}`)),
    h(
      'button',
      { type: 'button', class: 'btn btn-small btn-icon', key: `qu-${id}`, title: `Move ${name} up`, disabled: index === 0, onclick: () => act('move_hand', { participant: id, position: Math.max(0, index - 1) }) },
      symbol('↑'),
      hidden(`Move ${name} up`),
    ),
    h(
      'button',
      { type: 'button', class: 'btn btn-small btn-icon', key: `qd-${id}`, title: `Move ${name} down`, disabled: index === length - 1, onclick: () => act('move_hand', { participant: id, position: index + 1 }) },
      symbol('↓'),
      hidden(`Move ${name} down`),
    ),
    h(
      'button',
      { type: 'button', class: 'btn btn-small btn-icon', key: `ql-${id}`, title: `Lower ${name}’s hand`, onclick: () => act('lower_hand', { participant: id }) },
      symbol('×'),
      hidden(`Lower ${name}’s hand`),
    ),
  );
}

const hidden = (text) => h('span', { class: 'visually-hidden' }, text);
const symbol = (text) => h('span', { 'aria-hidden': 'true' }, text);

/** The actions on one person, behind a disclosure so the roster stays calm. */
export function personActions({ state, act, confirm }, p) {
  const id = p.id;
  const name = p.name;
  // Choosing an item closes the menu and puts focus back on its button, before the action runs (so a
  // confirmation dialog returns focus there too).
  const b = (key, label, run, cls = '') =>
    h(
      'button',
      {
        type: 'button',
        class: `menu-item${cls}`,
        key: `${key}-${id}`,
        onclick: (ev) => {
          const details = ev.currentTarget.closest('details');
          details.open = false;
          details.querySelector('summary').focus();
          run();
        },
      },
      label,
    );
  const items = [];
  const hasFloor = state.floor.speaker?.participant === id;
  if (p.presence !== 'waiting') {
    items.push(hasFloor ? b('floor', 'Take the floor back', () => act('take_floor')) : b('floor', 'Give the floor', () => act('give_floor', { participant: id })));
  }
  if (p.role === 'member') {
    items.push(
      p.muted_by_facilitator
        ? b('mute', 'Allow to speak', () => act('allow_speak', { participant: id }))
        : b('mute', 'Mute', () => act('mute', { participant: id })),
    );
    if (p.hand_raised_at != null) items.push(b('lower', 'Lower hand', () => act('lower_hand', { participant: id })));
    items.push(
      p.chat_allowed
        ? b('chat', 'Pause their chat', () => act('set_chat_allowed', { participant: id, allowed: false }))
        : b('chat', 'Let them chat again', () => act('set_chat_allowed', { participant: id, allowed: true })),
    );
    items.push(b('promote', 'Make co-facilitator', () => act('promote', { participant: id })));
    items.push(
      b(
        'remove',
        'Remove from meeting…',
        async () => {
          const ok = await confirm({
            title: `Remove ${name}?`,
            body: `${name} leaves the meeting now. They can join again with the link.`,
            confirm: 'Remove',
            danger: true,
          });
          if (ok) act('remove', { participant: id });
        },
        ' is-danger',
      ),
    );
    items.push(
      b(
        'ban',
        'Ban from meeting…',
        async () => {
          const ok = await confirm({
            title: `Ban ${name}?`,
            body: `${name} leaves the meeting now and cannot come back to it, not even with the link.`,
            confirm: 'Ban',
            danger: true,
          });
          if (ok) act('ban', { participant: id });
        },
        ' is-danger',
      ),
    );
  } else {
    items.push(b('demote', 'Make member', () => act('demote', { participant: id })));
  }
  return h(
    'details',
    {
      class: 'person-actions',
      key: `actions-${id}`,
      ontoggle: (ev) => {
        if (ev.currentTarget.open) ev.currentTarget.querySelector('.menu').scrollIntoView({ block: 'nearest' });
      },
      onkeydown: (ev) => {
        if (ev.key !== 'Escape') return;
        ev.currentTarget.open = false;
        ev.currentTarget.querySelector('summary').focus();
      },
    },
    h('summary', { class: 'btn btn-small', key: `summary-${id}`, 'aria-label': `Actions for ${name}` }, 'Actions'),
    h('div', { class: 'menu', role: 'group', 'aria-label': `Actions for ${name}` }, items),
  );
}

/** A checkbox for one of this device's own preferences (not a room setting). */
function pref({ prefs, setPref }, key, field, label) {
  return h(
    'div',
    { class: 'check' },
    h('input', { type: 'checkbox', id: `pref-${key}`, key: `pref-${key}`, checked: !!prefs[field], onchange: (ev) => setPref(field, ev.target.checked) }),
    h('label', { for: `pref-${key}` }, label),
  );
}

/** Room-wide controls: microphones, settings, the end of the meeting. */
export function facilitatorPanel(ctx) {
  const { state, act, confirm } = ctx;
  const s = state.settings;
  const set = async (patch) => {
    // If the server refuses, redraw so the controls show the settings as they really are.
    if (!(await act('update_settings', { settings: patch }))) ctx.forceRender();
  };
  const toggle = (key, field, label, hint) =>
    h(
      'div',
      { class: 'check' },
      h('input', {
        type: 'checkbox',
        id: `set-${key}`,
        key: `set-${key}`,
        checked: !!s[field],
        'aria-describedby': hint ? `set-${key}-hint` : null,
        onchange: (ev) => set({ [field]: ev.target.checked }),
      }),
      h('label', { for: `set-${key}` }, label),
      hint ? h('p', { class: 'hint', id: `set-${key}-hint` }, hint) : null,
    );
  const select = (key, field, label, choices, current) => {
    const options = [...choices];
    if (!options.some(([v]) => v === current)) options.push([current, `${current} seconds`]);
    return h(
      'div',
      { class: 'field field-inline' },
      h('label', { for: `set-${key}` }, label),
      h(
        'select',
        { id: `set-${key}`, key: `set-${key}`, onchange: (ev) => set({ [field]: Number(ev.target.value) }) },
        options.map(([v, text]) => h('option', { value: String(v), selected: v === current }, text)),
      ),
    );
  };
  return [
    h('h2', { id: 'fac-title', tabindex: '-1' }, 'Running the meeting'),
    h(
      'section',
      { class: 'fac-section', 'aria-labelledby': 'fac-mics' },
      h('h3', { id: 'fac-mics' }, 'Microphones'),
      h(
        'button',
        { type: 'button', class: 'btn btn-small', key: 'mute-all', onclick: () => act('mute_all') },
        'Mute all members',
      ),
      h('p', { class: 'hint' }, 'Muted members can unmute again only when you allow them to speak (in each person’s actions).'),
    ),
    h(
      'section',
      { class: 'fac-section', 'aria-labelledby': 'fac-settings' },
      h('h3', { id: 'fac-settings' }, 'Room settings'),
      toggle('locked', 'locked', 'Lock the room', 'No one new can join. People already here stay.'),
      toggle('waiting', 'waiting_room', 'Waiting room'),
      toggle('mute-entry', 'mute_on_entry', 'New members need permission to unmute'),
      toggle('one-speaker', 'one_speaker', 'One speaker at a time', 'Only the person with the floor and facilitators can be heard.'),
      toggle('chat', 'chat_enabled', 'Room chat on'),
      toggle('privacy', 'roster_privacy', 'Private roster', 'Members see the facilitators and a head count, not each other’s names.'),
      select('timer', 'share_secs', 'Share timer', TIMER_CHOICES, s.share_secs ?? 0),
      s.share_secs
        ? [
            select('warning', 'share_warning_secs', 'Warning before the end', WARNING_CHOICES, s.share_warning_secs),
            toggle('auto-end', 'auto_end_share', 'Take the floor back when the time is up'),
          ]
        : null,
    ),
    h(
      'section',
      { class: 'fac-section', 'aria-labelledby': 'fac-alerts' },
      h('h3', { id: 'fac-alerts' }, 'When someone is waiting'),
      pref(ctx, 'arrival-sound', 'arrivalSound', 'Play a soft chime'),
      pref(ctx, 'arrival-title', 'arrivalTitle', 'Show it in the tab’s title'),
      h('p', { class: 'hint' }, 'On this device only.'),
    ),
    state.standing ? linksSection(ctx) : null,
    h(
      'section',
      { class: 'fac-section', 'aria-labelledby': 'fac-end' },
      h('h3', { id: 'fac-end' }, 'End'),
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn-danger-outline',
          key: 'end-meeting',
          onclick: async () => {
            const ok = await confirm({
              title: 'End the meeting for everyone?',
              body: 'Everyone is disconnected, and the meeting, its chat and its links are gone for good.',
              confirm: 'End the meeting',
              danger: true,
            });
            if (ok) act('end_meeting');
          },
        },
        'End the meeting',
      ),
    ),
  ];
}

/**
 * A standing room's links: the members' link and this facilitator's own, to copy, and replacing a
 * leaked one (the old link stops working at once; people already here stay). The server sends the
 * new links to every facilitator here (`links`).
 */
function linksSection(ctx) {
  const { act, confirm } = ctx;
  const { join, facilitator } = ctx.links();
  const replace = async (which) => {
    const members = which === 'members';
    const ok = await confirm({
      title: members ? 'Replace the members’ link?' : 'Replace the facilitator link?',
      body: members
        ? 'The old link stops working at once: no one can join with it any more. People already here stay. You get a new link here to send to the group.'
        : 'The old facilitator link stops working at once. Facilitators already here stay. You get a new facilitator link here: keep it private.',
      confirm: 'Replace the link',
      danger: true,
    });
    if (ok && (await act('rotate_link', { link: which }))) announce(members ? 'The members’ link was replaced. The new one is under Links.' : 'The facilitator link was replaced. The new one is under Links.');
  };
  return h(
    'section',
    { class: 'fac-section', 'aria-labelledby': 'fac-links' },
    h('h3', { id: 'fac-links' }, 'Links'),
    copyField('links-members', 'Members’ link', join, 'The group’s link for every meeting.'),
    facilitator
      ? copyField('links-facilitator', 'Your facilitator link', facilitator, 'Keep it private: anyone with it can run the meeting.')
      : h('p', { class: 'hint' }, 'You are a co-facilitator for this meeting, so you have no facilitator link of your own.'),
    h(
      'div',
      { class: 'button-row' },
      h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: 'replace-members', onclick: () => replace('members') }, 'Replace the members’ link…'),
      h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: 'replace-facilitator', onclick: () => replace('facilitator') }, 'Replace the facilitator link…'),
    ),
    h('p', { class: 'hint' }, 'Replace a link that reached someone it should not: the old one stops working at once, and everyone here stays.'),
  );
}

/** A read-only link with a Copy button. */
function copyField(id, label, url, hint) {
  const copy = async (ev) => {
    const button = ev.currentTarget;
    const input = document.getElementById(id);
    const ok = await copyText(url, input);
    button.textContent = ok ? 'Copied' : 'Select and copy';
    announce(ok ? `${label} copied.` : 'Could not copy. Select the link and copy it.');
    setTimeout(() => (button.textContent = 'Copy'), 2500);
  };
  return h(
    'div',
    { class: 'field link-field' },
    h('label', { for: id }, label),
    h(
      'div',
      { class: 'copy-row' },
      h('input', { id, key: id, type: 'text', readonly: true, value: url, spellcheck: 'false', 'aria-describedby': `${id}-hint`, onfocus: (ev) => ev.target.select() }),
      h('button', { type: 'button', class: 'btn btn-small', key: `${id}-copy`, 'aria-describedby': id, onclick: copy }, 'Copy'),
    ),
    h('p', { class: 'hint', id: `${id}-hint` }, hint),
  );
}

// ---- the last facilitator leaving ----------------------------------------------------------------

/** Whether this person is the meeting's only facilitator (one whose connection dropped still counts). */
export function onlyFacilitator(state) {
  if (!state.isFacilitator) return false;
  return ![...state.participants.values()].some((p) => p.id !== state.you && p.role === 'facilitator');
}

/**
 * Asks the only facilitator before they leave (PROTOCOL.md §6.9): make someone a facilitator first
 * (`promote`), leave anyway, or stay. Resolves to true when they should leave now.
 */
export function lastFacilitatorLeave({ state, act }) {
  const dialog = document.getElementById('confirm');
  const members = state.roster().filter((p) => p.role === 'member' && p.presence === 'online');
  const stay = h('button', { type: 'button', class: 'btn' }, t('presence.lastLeaveStay'));
  const anyway = h('button', { type: 'button', class: members.length ? 'btn' : 'btn btn-primary' }, t('presence.lastLeaveAnyway'));
  const who = members.length
    ? h('select', { id: 'last-leave-who' }, ...members.map((p) => h('option', { value: p.id }, p.name)))
    : null;
  const promote = who ? h('button', { type: 'button', class: 'btn btn-primary' }, t('presence.lastLeavePromote')) : null;
  dialog.replaceChildren(
    h('h2', { id: 'confirm-title' }, t('presence.lastLeaveTitle')),
    h('p', { id: 'confirm-body' }, t(who ? 'presence.lastLeaveBody' : 'presence.lastLeaveBodyAlone')),
    who ? h('div', { class: 'field' }, h('label', { for: 'last-leave-who' }, t('presence.lastLeaveChoose')), who) : null,
    h('div', { class: 'dialog-actions' }, stay, anyway, promote),
  );
  dialog.setAttribute('aria-labelledby', 'confirm-title');
  dialog.setAttribute('aria-describedby', 'confirm-body');
  const opener = document.activeElement;
  return new Promise((resolve) => {
    let settled = false;
    const done = (leave) => {
      if (settled) return;
      settled = true;
      dialog.close();
      resolve(leave);
    };
    stay.addEventListener('click', () => done(false));
    anyway.addEventListener('click', () => done(true));
    promote?.addEventListener('click', async () => {
      promote.disabled = true;
      // Leave only once they are a facilitator: if that failed (they left just now), stay; the
      // room says why.
      done(await act('promote', { participant: who.value }));
    });
    dialog.addEventListener('close', () => {
      if (!settled) done(false);
      if (opener?.isConnected) opener.focus();
    }, { once: true });
    dialog.showModal();
    stay.focus();
  });
}
