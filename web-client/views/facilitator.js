// The facilitator's controls: the waiting list, the floor and the queue, each person's actions, room
// settings and the end of the meeting. Drawn inside the room view; every handler reads the model at
// click time, so a redraw never leaves a stale button behind.

import { t, tn } from '../i18n.js';
import { announce, copyText, h } from './dom.js';

const timerChoices = () => [[0, t('timer.none')], ...[1, 2, 3, 5, 10].map((m) => [m * 60, tn('timer.minutes', m)])];
const warningChoices = () => [...[10, 15, 30].map((s) => [s, tn('timer.seconds', s)]), [60, tn('timer.minutes', 1)]];

/** The waiting room list, at the top of "People". */
export function waitingList({ state, act }) {
  const waiting = state.waitingList();
  return h(
    'div',
    { class: `waiting-list${waiting.length ? ' has-waiting' : ''}` },
    h(
      'div',
      { class: 'section-head' },
      h('h2', { id: 'waiting-title', tabindex: '-1' }, t('fac.waiting_room', { count: waiting.length })),
      waiting.length > 1
        ? h('button', { type: 'button', class: 'btn btn-small btn-primary', key: 'admit-all', onclick: () => act('admit_all') }, t('fac.admit_all'))
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
                  t('fac.admit'),
                  hidden(` ${p.name}`),
                ),
                h(
                  'button',
                  { type: 'button', class: 'btn btn-small', key: `deny-${p.id}`, onclick: () => act('deny', { participant: p.id }) },
                  t('fac.deny'),
                  hidden(` ${p.name}`),
                ),
              ),
            ),
          ),
        )
      : h('p', { class: 'empty' }, t('fac.no_one_waiting')),
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
      t('fac.next_speaker'),
    ),
    h(
      'button',
      { type: 'button', class: 'btn btn-small', key: 'take-floor', disabled: !speaker, onclick: () => act('take_floor') },
      t('fac.take_floor'),
    ),
    h(
      'button',
      { type: 'button', class: 'btn btn-small', key: 'lower-all', disabled: !hasQueue, onclick: () => act('lower_all_hands') },
      t('fac.lower_all'),
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
    h('button', { type: 'button', class: 'btn btn-small', key: `qg-${id}`, onclick: () => act('give_floor', { participant: id }) }, t('fac.give_floor'), hidden(` ${t('fac.give_floor_to', { name })}`)),
    h(
      'button',
      { type: 'button', class: 'btn btn-small btn-icon', key: `qu-${id}`, title: t('fac.move_up', { name }), disabled: index === 0, onclick: () => act('move_hand', { participant: id, position: Math.max(0, index - 1) }) },
      symbol('↑'),
      hidden(t('fac.move_up', { name })),
    ),
    h(
      'button',
      { type: 'button', class: 'btn btn-small btn-icon', key: `qd-${id}`, title: t('fac.move_down', { name }), disabled: index === length - 1, onclick: () => act('move_hand', { participant: id, position: index + 1 }) },
      symbol('↓'),
      hidden(t('fac.move_down', { name })),
    ),
    h(
      'button',
      { type: 'button', class: 'btn btn-small btn-icon', key: `ql-${id}`, title: t('fac.lower_hand_of', { name }), onclick: () => act('lower_hand', { participant: id }) },
      symbol('×'),
      hidden(t('fac.lower_hand_of', { name })),
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
    items.push(hasFloor ? b('floor', t('fac.take_floor'), () => act('take_floor')) : b('floor', t('fac.give_the_floor'), () => act('give_floor', { participant: id })));
  }
  if (p.role === 'member') {
    items.push(
      p.muted_by_facilitator
        ? b('mute', t('fac.allow_speak'), () => act('allow_speak', { participant: id }))
        : b('mute', t('fac.mute'), () => act('mute', { participant: id })),
    );
    if (p.hand_raised_at != null) items.push(b('lower', t('fac.lower_hand'), () => act('lower_hand', { participant: id })));
    items.push(
      p.chat_allowed
        ? b('chat', t('fac.pause_chat'), () => act('set_chat_allowed', { participant: id, allowed: false }))
        : b('chat', t('fac.resume_chat'), () => act('set_chat_allowed', { participant: id, allowed: true })),
    );
    items.push(b('promote', t('fac.promote'), () => act('promote', { participant: id })));
    items.push(
      b(
        'remove',
        t('fac.remove'),
        async () => {
          const ok = await confirm({
            title: t('fac.remove_title', { name }),
            body: t('fac.remove_body', { name }),
            confirm: t('fac.remove_confirm'),
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
        t('fac.ban'),
        async () => {
          const ok = await confirm({
            title: t('fac.ban_title', { name }),
            body: t('fac.ban_body', { name }),
            confirm: t('fac.ban_confirm'),
            danger: true,
          });
          if (ok) act('ban', { participant: id });
        },
        ' is-danger',
      ),
    );
  } else {
    items.push(b('demote', t('fac.demote'), () => act('demote', { participant: id })));
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
    h('summary', { class: 'btn btn-small', key: `summary-${id}`, 'aria-label': t('fac.actions_for', { name }) }, t('fac.actions')),
    h('div', { class: 'menu', role: 'group', 'aria-label': t('fac.actions_for', { name }) }, items),
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
    if (!options.some(([v]) => v === current)) options.push([current, tn('timer.seconds', current)]);
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
    h('h2', { id: 'fac-title', tabindex: '-1' }, t('fac.title')),
    h(
      'section',
      { class: 'fac-section', 'aria-labelledby': 'fac-mics' },
      h('h3', { id: 'fac-mics' }, t('fac.mics')),
      h(
        'button',
        { type: 'button', class: 'btn btn-small', key: 'mute-all', onclick: () => act('mute_all') },
        t('fac.mute_all'),
      ),
      h('p', { class: 'hint' }, t('fac.mute_all_hint')),
    ),
    h(
      'section',
      { class: 'fac-section', 'aria-labelledby': 'fac-settings' },
      h('h3', { id: 'fac-settings' }, t('fac.settings')),
      toggle('locked', 'locked', t('fac.lock'), t('fac.lock_hint')),
      toggle('waiting', 'waiting_room', t('fac.waiting')),
      toggle('mute-entry', 'mute_on_entry', t('settings.mute_on_entry')),
      toggle('one-speaker', 'one_speaker', t('fac.one_speaker'), t('fac.one_speaker_hint')),
      toggle('chat', 'chat_enabled', t('fac.chat')),
      toggle('privacy', 'roster_privacy', t('fac.privacy'), t('fac.privacy_hint')),
      select('timer', 'share_secs', t('settings.share_timer'), timerChoices(), s.share_secs ?? 0),
      s.share_secs
        ? [
            select('warning', 'share_warning_secs', t('fac.warning'), warningChoices(), s.share_warning_secs),
            toggle('auto-end', 'auto_end_share', t('settings.auto_end')),
          ]
        : null,
    ),
    h(
      'section',
      { class: 'fac-section', 'aria-labelledby': 'fac-alerts' },
      h('h3', { id: 'fac-alerts' }, t('fac.alerts')),
      pref(ctx, 'arrival-sound', 'arrivalSound', t('fac.alert_sound')),
      pref(ctx, 'arrival-title', 'arrivalTitle', t('fac.alert_title')),
      h('p', { class: 'hint' }, t('fac.alert_hint')),
    ),
    state.standing ? linksSection(ctx) : null,
    h(
      'section',
      { class: 'fac-section', 'aria-labelledby': 'fac-end' },
      h('h3', { id: 'fac-end' }, t('fac.end')),
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn-danger-outline',
          key: 'end-meeting',
          onclick: async () => {
            const ok = await confirm({
              title: t('fac.end_title'),
              body: t('fac.end_body'),
              confirm: t('fac.end_confirm'),
              danger: true,
            });
            if (ok) act('end_meeting');
          },
        },
        t('fac.end_confirm'),
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
      title: members ? t('fac.replace_members_title') : t('fac.replace_facilitator_title'),
      body: members ? t('fac.replace_members_body') : t('fac.replace_facilitator_body'),
      confirm: t('fac.replace_confirm'),
      danger: true,
    });
    if (ok && (await act('rotate_link', { link: which }))) announce(members ? t('fac.replaced_members') : t('fac.replaced_facilitator'));
  };
  return h(
    'section',
    { class: 'fac-section', 'aria-labelledby': 'fac-links' },
    h('h3', { id: 'fac-links' }, t('fac.links')),
    copyField('links-members', t('link.members'), join, t('fac.members_link_hint')),
    facilitator
      ? copyField('links-facilitator', t('link.yours'), facilitator, t('fac.facilitator_link_hint'))
      : h('p', { class: 'hint' }, t('fac.co_no_link')),
    h(
      'div',
      { class: 'button-row' },
      h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: 'replace-members', onclick: () => replace('members') }, t('link.replace_members')),
      h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: 'replace-facilitator', onclick: () => replace('facilitator') }, t('link.replace_facilitator')),
    ),
    h('p', { class: 'hint' }, t('fac.replace_hint')),
  );
}

/** A read-only link with a Copy button. */
function copyField(id, label, url, hint) {
  const copy = async (ev) => {
    const button = ev.currentTarget;
    const input = document.getElementById(id);
    const ok = await copyText(url, input);
    button.textContent = ok ? t('copy.copied') : t('copy.select');
    announce(ok ? t('copy.done', { label }) : t('copy.failed'));
    setTimeout(() => (button.textContent = t('copy.copy')), 2500);
  };
  return h(
    'div',
    { class: 'field link-field' },
    h('label', { for: id }, label),
    h(
      'div',
      { class: 'copy-row' },
      h('input', { id, key: id, type: 'text', readonly: true, value: url, spellcheck: 'false', 'aria-describedby': `${id}-hint`, onfocus: (ev) => ev.target.select() }),
      h('button', { type: 'button', class: 'btn btn-small', key: `${id}-copy`, 'aria-describedby': id, onclick: copy }, t('copy.copy')),
    ),
    h('p', { class: 'hint', id: `${id}-hint` }, hint),
  );
}
