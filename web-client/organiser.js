// The organiser page: a group's standing rooms, under the server's operator key. Sign in (the key is
// kept in this tab's sessionStorage only; signing out forgets it), see each room with its next
// meeting in your own time and how many people are in it now (counts, never names), create a weekly
// room, copy its links, replace a leaked link, delete a room, end a meeting in progress.
//
// No page links here: an organiser is given this page's address (README "Organiser page"). It talks
// only to the organiser API (api.js `organiserApi`, PROTOCOL.md). The list refreshes itself while the
// tab is visible; redraws keep keyboard focus where it was (dom.js `swap`).

import { organiserApi } from './api.js';
import { locales, t, tn } from './i18n.js';
import { announce, confirmDialog, copyText, formatTime, h, swap } from './views/dom.js';
import { brand } from './views/start.js';

const KEY_STORE = 'circle.organiser.key';
// How often the list (its live counts and next meetings) is fetched again while the tab is visible.
const REFRESH_MS = 20_000;
const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/** The days of the week in the page's language, as `[key, name]` (1 January 2024 was a Monday). */
const weekdays = () =>
  WEEKDAYS.map((k, i) => [k, new Date(Date.UTC(2024, 0, 1 + i)).toLocaleDateString(locales(), { weekday: 'long', timeZone: 'UTC' })]);

const root = document.getElementById('app');
let redraw = null; // draws the screen on show again (in another language)

// A new language from the picker: the screen again, with what was typed and the focus kept.
window.addEventListener('circle-language', () => {
  document.title = t('org.page_title');
  if (!redraw) return;
  const focus = document.activeElement?.id;
  const typed = [...root.querySelectorAll('input[id], select[id]')]
    .filter((el) => !el.closest('.language') && !el.readOnly)
    .map((el) => [el.id, el.value, el.checked]);
  redraw();
  for (const [id, value, checked] of typed) {
    const el = document.getElementById(id);
    if (!el) continue;
    if (el.type === 'checkbox') el.checked = checked;
    else el.value = value;
  }
  if (focus) document.getElementById(focus)?.focus();
});

/** What each of the API's error codes means to an organiser; `what` names the thing being changed. */
function errorText(e, what = 'request') {
  switch (e.code) {
    case 'unauthorized':
    case 'organiser_disabled':
    case 'duplicate_title':
    case 'standing_room_not_found':
    case 'origin_not_allowed':
    case 'unreachable':
      return t(`org.error.${e.code}`);
    case 'storage_unavailable':
      return t('org.error.storage_unavailable', { detail: e.message });
    case 'bad_request':
      return t('org.error.bad_request', { what: t(`org.what.${what}`), detail: e.message });
    default:
      return e.message || t('org.error.other');
  }
}

// ---- sign in ------------------------------------------------------------------------------------

function showSignIn(notice) {
  document.title = t('org.page_title');
  redraw = () => showSignIn(notice);
  const error = h('div', { class: 'alert alert-error', role: 'alert', hidden: !notice }, notice ?? '');
  const key = h('input', { id: 'operator-key', name: 'key', type: 'password', autocomplete: 'off', 'aria-describedby': 'operator-key-hint', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('org.sign_in'));
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', tabindex: '-1' }, t('org.title')),
    h('p', { class: 'lead' }, t('org.sign_in_lead')),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'operator-key' }, t('org.key')),
      key,
      h('p', { class: 'hint', id: 'operator-key-hint' }, t('org.key_hint')),
    ),
    error,
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = key.value.trim();
    error.hidden = true;
    if (!value) {
      error.textContent = t('org.key_missing');
      error.hidden = false;
      key.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = t('org.signing_in');
    try {
      const rooms = await organiserApi(value).list();
      sessionStorage.setItem(KEY_STORE, value);
      showRooms(value, rooms);
    } catch (e) {
      submit.disabled = false;
      submit.textContent = t('org.sign_in');
      error.textContent = errorText(e);
      error.hidden = false;
      key.focus();
    }
  });
  const main = h('main', { id: 'main', class: 'page page-narrow' }, brand(), form);
  root.replaceChildren(main);
  (notice ? key : main.querySelector('h1')).focus();
}

// ---- the rooms ----------------------------------------------------------------------------------

let stopRefresh = () => {};

// `fresh`: links made just now, still to show (when drawn again in another language).
function showRooms(key, rooms = null, fresh = null) {
  document.title = t('org.page_title');
  stopRefresh();
  const api = organiserApi(key);
  const model = { rooms: rooms ?? [], meetings: [], loaded: rooms !== null, fresh, problem: null };
  redraw = () => showRooms(key, model.loaded ? model.rooms : null, model.fresh);
  const list = h('div', { class: 'org-list' });
  const problem = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
  const signOut = h('button', { type: 'button', class: 'btn btn-small', onclick: () => leave() }, t('org.sign_out'));
  const refreshBtn = h('button', { type: 'button', class: 'btn btn-small', onclick: () => refresh(true) }, t('org.refresh'));
  const main = h(
    'main',
    { id: 'main', class: 'page page-organiser' },
    h('div', { class: 'org-top' }, brand(), signOut),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'rooms-title' },
      h('div', { class: 'section-head' }, h('h1', { id: 'rooms-title', tabindex: '-1' }, t('org.title')), refreshBtn),
      h('p', { class: 'lead' }, t('org.lead')),
      problem,
      list,
    ),
    createForm(api, { created, fail }),
  );
  root.replaceChildren(main);
  main.querySelector('h1').focus();

  /** Signs out: the key is forgotten. */
  function leave(notice) {
    stopRefresh();
    sessionStorage.removeItem(KEY_STORE);
    showSignIn(notice);
  }

  function fail(e, what) {
    if (e.code === 'unauthorized') {
      leave(errorText(e));
      return;
    }
    problem.textContent = errorText(e, what);
    problem.hidden = false;
  }

  async function refresh(byHand = false) {
    try {
      const [rs, ms] = await Promise.all([api.list(), api.meetings().catch(() => model.meetings)]);
      model.rooms = rs;
      model.meetings = ms;
      model.loaded = true;
      if (byHand) problem.hidden = true;
      render();
      if (byHand) announce(t('org.up_to_date'));
    } catch (e) {
      fail(e);
    }
  }

  function render() {
    swap(list, roomList(model, actions), { fallback: ['rooms-title'] });
  }

  function created(view) {
    model.fresh = { id: view.id, title: view.title, join: view.join_url, facilitator: view.facilitator_url, why: 'created' };
    problem.hidden = true;
    refresh().then(() => document.getElementById('fresh-title')?.focus());
  }

  /** Runs an API call for a button; on success, refreshes the list. */
  async function run(what, call) {
    problem.hidden = true;
    try {
      const result = await call();
      await refresh();
      return result ?? true;
    } catch (e) {
      fail(e, what);
      if (e.code === 'standing_room_not_found') await refresh();
      return null;
    }
  }

  const actions = roomActions({ api, model, render, run });

  render();
  if (!model.loaded) refresh();
  else api.meetings().then((ms) => ((model.meetings = ms), render()), () => {});
  const timer = setInterval(() => {
    if (document.visibilityState === 'visible') refresh();
  }, REFRESH_MS);
  stopRefresh = () => clearInterval(timer);
}

/**
 * What the buttons of the list do: each confirms first, calls the API (`run` shows any error and
 * refreshes the list) and puts focus and the screen reader's words where the change is.
 */
function roomActions({ api, model, render, run }) {
  return {
    dismissFresh() {
      model.fresh = null;
      render();
      document.getElementById('rooms-title')?.focus();
    },
    async rotate(room, which) {
      const members = which === 'members';
      const ok = await confirmDialog({
        title: members ? t('org.replace_members_title', { title: room.title }) : t('org.replace_facilitator_title', { title: room.title }),
        body: members ? t('org.replace_members_body') : t('org.replace_facilitator_body'),
        confirm: t('fac.replace_confirm'),
        danger: true,
      });
      if (!ok) return;
      const view = await run('link', () => api.rotate(room.id, which));
      if (!view) return;
      model.fresh = {
        id: room.id,
        title: room.title,
        join: view.join_url,
        facilitator: members ? null : view.facilitator_url,
        why: members ? 'members' : 'facilitator',
      };
      render();
      document.getElementById('fresh-title')?.focus();
    },
    async remove(room) {
      const ok = await confirmDialog({
        title: t('org.delete_title', { title: room.title }),
        body: t('org.delete_body'),
        confirm: t('org.delete_confirm'),
        danger: true,
      });
      if (!ok) return;
      if (await run('room', () => api.remove(room.id))) {
        if (model.fresh?.id === room.id) model.fresh = null;
        render();
        announce(t('org.deleted', { title: room.title }));
        document.getElementById('rooms-title')?.focus();
      }
    },
    async end(meeting) {
      const ok = await confirmDialog({
        title: t('org.end_title', { title: meeting.title }),
        body: t('org.end_body'),
        confirm: t('fac.end_confirm'),
        danger: true,
      });
      if (!ok) return;
      if (await run('meeting', () => api.endMeeting(meeting.meeting))) announce(t('org.ended', { title: meeting.title }));
    },
  };

}

/** The rooms, the links shown once, and the meetings going on now. */
function roomList(model, actions) {
  if (!model.loaded) return h('p', { class: 'empty' }, t('org.loading'));
  const adhoc = model.meetings.filter((m) => !m.standing);
  return [
    model.fresh ? freshLinks(model.fresh, actions) : null,
    model.rooms.length
      ? h('ul', { class: 'plain-list org-rooms', 'aria-labelledby': 'rooms-title' }, model.rooms.map((r) => roomItem(r, model, actions)))
      : h('p', { class: 'empty' }, t('org.none')),
    adhoc.length
      ? [
          h('h2', { id: 'adhoc-title' }, t('org.other_meetings')),
          h('ul', { class: 'plain-list org-rooms', 'aria-labelledby': 'adhoc-title' }, adhoc.map((m) => meetingItem(m, actions))),
        ]
      : null,
  ];
}

function roomItem(room, model, actions) {
  const meeting = model.meetings.find((m) => m.standing === room.id);
  const live = room.live ?? (meeting ? { participants: meeting.participants, waiting: meeting.waiting } : null);
  const slug = `room-${room.id}`;
  return h(
    'li',
    { class: 'org-room', key: slug },
    h('h2', { class: 'org-room-title', id: `${slug}-title` }, room.title),
    h('p', { class: 'org-schedule' }, scheduleText(room)),
    h('p', { class: 'org-next' }, nextText(room)),
    live ? h('p', { class: 'org-live' }, h('span', { class: 'badge badge-live' }, t('org.meeting_now')), ` ${liveText(live)}`) : null,
    copyField(`${slug}-link`, t('link.members'), room.join_url, null),
    h(
      'div',
      { class: 'button-row org-actions' },
      h('button', { type: 'button', class: 'btn btn-small', key: `${slug}-rotate-members`, onclick: () => actions.rotate(room, 'members') }, t('link.replace_members')),
      h('button', { type: 'button', class: 'btn btn-small', key: `${slug}-rotate-fac`, onclick: () => actions.rotate(room, 'facilitator') }, t('link.replace_facilitator')),
      meeting
        ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: `${slug}-end`, onclick: () => actions.end(meeting) }, t('org.end_now'))
        : null,
      h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: `${slug}-delete`, onclick: () => actions.remove(room) }, t('org.delete')),
    ),
  );
}

function meetingItem(m, actions) {
  return h(
    'li',
    { class: 'org-room', key: `meeting-${m.meeting}` },
    h('p', { class: 'org-room-title' }, m.title),
    h('p', { class: 'org-live' }, liveText(m)),
    h('div', { class: 'button-row' }, h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: `end-${m.meeting}`, onclick: () => actions.end(m) }, t('org.end_now'))),
  );
}

/** The links just made (a new room, or a replaced link): the facilitator link is never shown again. */
function freshLinks(fresh, actions) {
  const heading = {
    created: t('org.fresh_created', { title: fresh.title }),
    members: t('org.fresh_members', { title: fresh.title }),
    facilitator: t('org.fresh_facilitator', { title: fresh.title }),
  }[fresh.why];
  return h(
    'section',
    { class: 'org-fresh', key: 'fresh', 'aria-labelledby': 'fresh-title' },
    h('h2', { id: 'fresh-title', tabindex: '-1' }, heading),
    fresh.why === 'members' ? h('p', null, t('org.old_members_gone')) : null,
    copyField('fresh-members', t('link.members'), fresh.join, t('org.fresh_members_hint')),
    fresh.facilitator
      ? [
          copyField('fresh-facilitator', t('join.facilitator_link'), fresh.facilitator, null),
          h(
            'div',
            { class: 'alert alert-caution', role: 'note' },
            h('strong', null, t('org.only_once')),
            ' ',
            t('org.only_once_body'),
          ),
        ]
      : null,
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', key: 'fresh-done', onclick: () => actions.dismissFresh() }, t('org.done'))),
  );
}

/** A read-only link with a Copy button. */
function copyField(id, label, url, hint) {
  const copy = async (ev) => {
    const button = ev.currentTarget;
    const ok = await copyText(url, document.getElementById(id));
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
      h('input', { id, key: id, type: 'text', readonly: true, value: url, spellcheck: 'false', onfocus: (ev) => ev.target.select() }),
      h('button', { type: 'button', class: 'btn btn-small', key: `${id}-copy`, 'aria-describedby': id, onclick: copy }, t('copy.copy')),
    ),
    hint ? h('p', { class: 'hint' }, hint) : null,
  );
}

// ---- words for times ----------------------------------------------------------------------------

function scheduleText(room) {
  const s = room.schedule;
  if (!s) return t('org.no_schedule');
  const names = weekdays();
  const days = s.weekdays.map((d) => names.find(([k]) => k === d)?.[1] ?? d);
  const own = localZone() === s.time_zone;
  const params = { days: joinWords(days), start: s.start, zone: s.time_zone, length: minutes(s.duration_mins) };
  const key = days.length === 7 ? 'org.schedule_daily' : 'org.schedule';
  return t(own ? key : `${key}_zone`, params);
}

function nextText(room) {
  const n = room.next_meeting;
  if (!n) return room.schedule ? '' : t('org.any_time');
  const now = Date.now();
  const day = new Date(n.starts_at).toLocaleDateString(locales(), { weekday: 'long', day: 'numeric', month: 'long' });
  const span = `${formatTime(n.starts_at)}–${formatTime(n.ends_at)}`;
  if (n.starts_at <= now && now < n.ends_at) return t('org.now_until', { time: formatTime(n.ends_at) });
  const next = t('org.next', { day, span });
  return n.opens_at < n.starts_at ? `${next} ${t('org.doors', { time: formatTime(n.opens_at) })}` : next;
}

function liveText(live) {
  const here = tn('org.in_meeting', live.participants);
  return live.waiting ? tn('org.and_waiting', live.waiting, { here }) : t('org.sentence', { here });
}

function minutes(n) {
  if (n % 60 === 0) return tn('org.hours', n / 60);
  return tn('timer.minutes', n);
}

function joinWords(words) {
  return new Intl.ListFormat(locales(), { type: 'conjunction' }).format(words);
}

function localZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

// ---- creating a room ----------------------------------------------------------------------------

function createForm(api, { created, fail }) {
  const error = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('org.create'));
  const form = h(
    'form',
    { class: 'card org-create', novalidate: true, 'aria-labelledby': 'create-title' },
    h('h2', { id: 'create-title', tabindex: '-1' }, t('org.create_title')),
    field('new-title', t('org.group_name'), h('input', { id: 'new-title', name: 'title', type: 'text', maxlength: '80', autocomplete: 'off', 'aria-describedby': 'new-title-hint' }), t('org.group_name_hint')),
    h(
      'fieldset',
      { class: 'org-weekdays' },
      h('legend', null, t('org.meets_every')),
      h('div', { class: 'weekday-grid' }, weekdays().map(([value, label]) => check(`day-${value}`, 'weekday', label, value))),
    ),
    h(
      'div',
      { class: 'org-row' },
      field('new-start', t('org.starts_at'), h('input', { id: 'new-start', name: 'start', type: 'time', value: '19:00', required: true })),
      field('new-duration', t('org.length'), h('input', { id: 'new-duration', name: 'duration', type: 'number', min: '5', max: '720', step: '5', value: '90', inputmode: 'numeric' })),
    ),
    field('new-zone', t('org.zone'), zoneSelect(), t('org.zone_hint')),
    field(
      'new-early',
      t('org.early'),
      h('input', { id: 'new-early', name: 'early', type: 'number', min: '0', max: '120', step: '1', value: '15', inputmode: 'numeric', 'aria-describedby': 'new-early-hint' }),
      t('org.early_hint'),
    ),
    h(
      'fieldset',
      null,
      h('legend', null, t('start.joining')),
      check('new-waiting', 'waitingRoom', t('org.waiting_room'), 'on', true),
      check('new-mute', 'muteOnEntry', t('settings.mute_on_entry'), 'on', true),
    ),
    error,
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const body = readForm(form);
    if (body.problem) return show(body.problem, body.focus);
    submit.disabled = true;
    submit.textContent = t('start.creating');
    try {
      const view = await api.create(body.request);
      form.reset();
      form.querySelector('#new-zone').value = localZone();
      created(view);
    } catch (e) {
      if (e.code === 'unauthorized') return fail(e);
      show(errorText(e, 'schedule'), e.code === 'duplicate_title' ? 'new-title' : null);
    } finally {
      submit.disabled = false;
      submit.textContent = t('org.create');
    }
  });
  function show(text, focusId) {
    error.textContent = text;
    error.hidden = false;
    if (focusId) document.getElementById(focusId)?.focus();
  }
  return form;
}

/** The create form's request, or the first problem with it (and the field to go back to). */
function readForm(form) {
  const data = new FormData(form);
  const title = String(data.get('title') ?? '').trim();
  const weekdays = data.getAll('weekday').map(String);
  const start = String(data.get('start') ?? '');
  const duration = Number(data.get('duration'));
  const early = Number(data.get('early'));
  if (!title) return { problem: t('org.problem.name'), focus: 'new-title' };
  if ([...title].length > 80) return { problem: t('org.problem.name_long'), focus: 'new-title' };
  if (!weekdays.length) return { problem: t('org.problem.days'), focus: 'day-mon' };
  if (!/^\d{2}:\d{2}$/.test(start)) return { problem: t('org.problem.start'), focus: 'new-start' };
  if (!Number.isInteger(duration) || duration < 5 || duration > 720) {
    return { problem: t('org.problem.length'), focus: 'new-duration' };
  }
  if (!Number.isInteger(early) || early < 0 || early > 120) {
    return { problem: t('org.problem.early'), focus: 'new-early' };
  }
  return {
    request: {
      title,
      settings: { waiting_room: data.has('waitingRoom'), mute_on_entry: data.has('muteOnEntry') },
      schedule: { weekdays, start, time_zone: String(data.get('zone')), duration_mins: duration },
      early_open_mins: early,
    },
  };
}

function zoneSelect() {
  const here = localZone();
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    // An older browser: the browser's own zone and UTC are offered.
  }
  const all = [...new Set([here, 'UTC', ...zones])].sort();
  return h('select', { id: 'new-zone', name: 'zone', 'aria-describedby': 'new-zone-hint' }, all.map((z) => h('option', { value: z, selected: z === here }, z)));
}

function field(id, label, control, hint) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null);
}

function check(id, name, label, value, checked = false) {
  return h('div', { class: 'check' }, h('input', { id, name, type: 'checkbox', value, checked }), h('label', { for: id }, label));
}

// ---- start --------------------------------------------------------------------------------------

const saved = sessionStorage.getItem(KEY_STORE);
if (saved) showRooms(saved);
else showSignIn();
