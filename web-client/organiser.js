// The organiser page: a group's standing rooms, under the server's operator key. Sign in (the key is
// kept in this tab's sessionStorage only; signing out forgets it), see each room with its next
// meeting in your own time and how many people are in it now (counts, never names), create a weekly
// room, copy its links, replace a leaked link, delete a room, end a meeting in progress.
//
// No page links here: an organiser is given this page's address (README "Organiser page"). It talks
// only to the organiser API (api.js `organiserApi`, PROTOCOL.md). The list refreshes itself while the
// tab is visible; redraws keep keyboard focus where it was (dom.js `swap`).

import { organiserApi } from './api.js';
import { announce, confirmDialog, copyText, formatTime, h, swap } from './views/dom.js';
import { brand } from './views/start.js';

const KEY_STORE = 'circle.organiser.key';
// How often the list (its live counts and next meetings) is fetched again while the tab is visible.
const REFRESH_MS = 20_000;
const WEEKDAYS = [
  ['mon', 'Monday'],
  ['tue', 'Tuesday'],
  ['wed', 'Wednesday'],
  ['thu', 'Thursday'],
  ['fri', 'Friday'],
  ['sat', 'Saturday'],
  ['sun', 'Sunday'],
];

const root = document.getElementById('app');

/** What each of the API's error codes means to an organiser; `what` names the thing being changed. */
function errorText(e, what = 'request') {
  switch (e.code) {
    case 'unauthorized':
      return 'The server did not accept this organiser key. Check it with whoever runs your Circle server, and try again.';
    case 'organiser_disabled':
      return 'The organiser page is turned off on this server, because it has no operator key. Whoever runs the server can set one ([rooms] operator_key in its configuration) and restart it.';
    case 'storage_unavailable':
      return `The server cannot reach its list of rooms just now (${e.message}). Nothing was changed, and meetings in progress go on. Please try again in a minute.`;
    case 'duplicate_title':
      return 'There is already a room with this name. Please choose another one, so that no one mixes the two groups up.';
    case 'bad_request':
      return `Please check the ${what}: ${e.message}`;
    case 'standing_room_not_found':
      return 'This room no longer exists: someone may have deleted it. The list is up to date now.';
    case 'origin_not_allowed':
      return 'The server does not accept requests from this page’s address (it is not in its allowed origins), so rooms cannot be managed from here.';
    case 'unreachable':
      return 'Could not reach the server. Check your connection and try again.';
    default:
      return e.message || 'Something went wrong. Please try again.';
  }
}

// ---- sign in ------------------------------------------------------------------------------------

function showSignIn(notice) {
  document.title = 'Circle: standing rooms';
  const error = h('div', { class: 'alert alert-error', role: 'alert', hidden: !notice }, notice ?? '');
  const key = h('input', { id: 'operator-key', name: 'key', type: 'password', autocomplete: 'off', 'aria-describedby': 'operator-key-hint', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', tabindex: '-1' }, 'Standing rooms'),
    h('p', { class: 'lead' }, 'Sign in to see and manage your groups’ rooms: the same link every week.'),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'operator-key' }, 'Organiser key'),
      key,
      h('p', { class: 'hint', id: 'operator-key-hint' }, 'The server’s operator key. It stays in this tab only, until you sign out or close the tab.'),
    ),
    error,
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = key.value.trim();
    error.hidden = true;
    if (!value) {
      error.textContent = 'Please enter the organiser key.';
      error.hidden = false;
      key.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const rooms = await organiserApi(value).list();
      sessionStorage.setItem(KEY_STORE, value);
      showRooms(value, rooms);
    } catch (e) {
      submit.disabled = false;
      submit.textContent = 'Sign in';
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

function showRooms(key, rooms = null) {
  document.title = 'Circle: standing rooms';
  stopRefresh();
  const api = organiserApi(key);
  const model = { rooms: rooms ?? [], meetings: [], loaded: rooms !== null, fresh: null, problem: null };
  const list = h('div', { class: 'org-list' });
  const problem = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
  const signOut = h('button', { type: 'button', class: 'btn btn-small', onclick: () => leave() }, 'Sign out');
  const refreshBtn = h('button', { type: 'button', class: 'btn btn-small', onclick: () => refresh(true) }, 'Refresh');
  const main = h(
    'main',
    { id: 'main', class: 'page page-organiser' },
    h('div', { class: 'org-top' }, brand(), signOut),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'rooms-title' },
      h('div', { class: 'section-head' }, h('h1', { id: 'rooms-title', tabindex: '-1' }, 'Standing rooms'), refreshBtn),
      h('p', { class: 'lead' }, 'Each group keeps its link every week. Times are shown in your own time. Circle keeps only each room’s name, settings and schedule: never who came or what was said.'),
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
      if (byHand) announce('The list is up to date.');
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
        title: members ? `Replace the members’ link of “${room.title}”?` : `Replace the facilitator link of “${room.title}”?`,
        body: members
          ? 'The old link stops working at once: no one can join with it any more. People in a meeting now stay. Send the new link to the group.'
          : 'The old facilitator link stops working at once. Facilitators in a meeting now stay. The new link is shown once, here.',
        confirm: 'Replace the link',
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
        title: `Delete “${room.title}”?`,
        body: 'Its links stop working for good, and a meeting in it now ends for everyone. This cannot be undone.',
        confirm: 'Delete the room',
        danger: true,
      });
      if (!ok) return;
      if (await run('room', () => api.remove(room.id))) {
        if (model.fresh?.id === room.id) model.fresh = null;
        render();
        announce(`“${room.title}” was deleted.`);
        document.getElementById('rooms-title')?.focus();
      }
    },
    async end(meeting) {
      const ok = await confirmDialog({
        title: `End the meeting in “${meeting.title}” now?`,
        body: 'Everyone in it is disconnected, and its chat is gone. A standing room stays, ready for its next meeting.',
        confirm: 'End the meeting',
        danger: true,
      });
      if (!ok) return;
      if (await run('meeting', () => api.endMeeting(meeting.meeting))) announce(`The meeting in “${meeting.title}” has ended.`);
    },
  };

}

/** The rooms, the links shown once, and the meetings going on now. */
function roomList(model, actions) {
  if (!model.loaded) return h('p', { class: 'empty' }, 'Loading the rooms…');
  const adhoc = model.meetings.filter((m) => !m.standing);
  return [
    model.fresh ? freshLinks(model.fresh, actions) : null,
    model.rooms.length
      ? h('ul', { class: 'plain-list org-rooms', 'aria-labelledby': 'rooms-title' }, model.rooms.map((r) => roomItem(r, model, actions)))
      : h('p', { class: 'empty' }, 'No standing rooms yet. Create the first one below.'),
    adhoc.length
      ? [
          h('h2', { id: 'adhoc-title' }, 'Other meetings now'),
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
    live ? h('p', { class: 'org-live' }, h('span', { class: 'badge badge-live' }, 'Meeting now'), ` ${liveText(live)}`) : null,
    copyField(`${slug}-link`, 'Members’ link', room.join_url, null),
    h(
      'div',
      { class: 'button-row org-actions' },
      h('button', { type: 'button', class: 'btn btn-small', key: `${slug}-rotate-members`, onclick: () => actions.rotate(room, 'members') }, 'Replace the members’ link…'),
      h('button', { type: 'button', class: 'btn btn-small', key: `${slug}-rotate-fac`, onclick: () => actions.rotate(room, 'facilitator') }, 'Replace the facilitator link…'),
      meeting
        ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: `${slug}-end`, onclick: () => actions.end(meeting) }, 'End the meeting now…')
        : null,
      h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: `${slug}-delete`, onclick: () => actions.remove(room) }, 'Delete the room…'),
    ),
  );
}

function meetingItem(m, actions) {
  return h(
    'li',
    { class: 'org-room', key: `meeting-${m.meeting}` },
    h('p', { class: 'org-room-title' }, m.title),
    h('p', { class: 'org-live' }, liveText(m)),
    h('div', { class: 'button-row' }, h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', key: `end-${m.meeting}`, onclick: () => actions.end(m) }, 'End the meeting now…')),
  );
}

/** The links just made (a new room, or a replaced link): the facilitator link is never shown again. */
function freshLinks(fresh, actions) {
  const heading = {
    created: `“${fresh.title}” is ready`,
    members: `New members’ link for “${fresh.title}”`,
    facilitator: `New facilitator link for “${fresh.title}”`,
  }[fresh.why];
  return h(
    'section',
    { class: 'org-fresh', key: 'fresh', 'aria-labelledby': 'fresh-title' },
    h('h2', { id: 'fresh-title', tabindex: '-1' }, heading),
    fresh.why === 'members' ? h('p', null, 'The old members’ link no longer works. Send this one to the group.') : null,
    copyField('fresh-members', 'Members’ link', fresh.join, 'Send this link to the group. It works for every meeting.'),
    fresh.facilitator
      ? [
          copyField('fresh-facilitator', 'Facilitator link', fresh.facilitator, null),
          h(
            'div',
            { class: 'alert alert-caution', role: 'note' },
            h('strong', null, 'This is the only time the facilitator link is shown. '),
            'Copy it now and give it only to the group’s facilitators: anyone with it can run the meetings. If it is lost or leaks, replace it to get a new one.',
          ),
        ]
      : null,
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', key: 'fresh-done', onclick: () => actions.dismissFresh() }, 'Done')),
  );
}

/** A read-only link with a Copy button. */
function copyField(id, label, url, hint) {
  const copy = async (ev) => {
    const button = ev.currentTarget;
    const ok = await copyText(url, document.getElementById(id));
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
      h('input', { id, key: id, type: 'text', readonly: true, value: url, spellcheck: 'false', onfocus: (ev) => ev.target.select() }),
      h('button', { type: 'button', class: 'btn btn-small', key: `${id}-copy`, 'aria-describedby': id, onclick: copy }, 'Copy'),
    ),
    hint ? h('p', { class: 'hint' }, hint) : null,
  );
}

// ---- words for times ----------------------------------------------------------------------------

function scheduleText(room) {
  const s = room.schedule;
  if (!s) return 'No fixed schedule: open whenever someone arrives.';
  const days = s.weekdays.map((d) => WEEKDAYS.find(([k]) => k === d)?.[1] ?? d);
  const which = days.length === 7 ? 'Every day' : `Every ${joinWords(days)}`;
  const own = localZone() === s.time_zone;
  return `${which} at ${s.start}${own ? '' : ` (${s.time_zone} time)`}, for ${minutes(s.duration_mins)}.`;
}

function nextText(room) {
  const n = room.next_meeting;
  if (!n) return room.schedule ? '' : 'The link works at any time.';
  const now = Date.now();
  const day = new Date(n.starts_at).toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' });
  const span = `${formatTime(n.starts_at)}–${formatTime(n.ends_at)}`;
  if (n.starts_at <= now && now < n.ends_at) return `Meeting time now, until ${formatTime(n.ends_at)} (your time).`;
  const doors = n.opens_at < n.starts_at ? ` The waiting room opens at ${formatTime(n.opens_at)}.` : '';
  return `Next meeting: ${day}, ${span} (your time).${doors}`;
}

function liveText(live) {
  const here = `${live.participants} ${live.participants === 1 ? 'person' : 'people'} in the meeting`;
  return live.waiting ? `${here}, ${live.waiting} waiting to be let in.` : `${here}.`;
}

function minutes(n) {
  if (n % 60 === 0) return `${n / 60} hour${n === 60 ? '' : 's'}`;
  return `${n} minutes`;
}

function joinWords(words) {
  return words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} and ${words.at(-1)}`;
}

function localZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

// ---- creating a room ----------------------------------------------------------------------------

function createForm(api, { created, fail }) {
  const error = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create the room');
  const form = h(
    'form',
    { class: 'card org-create', novalidate: true, 'aria-labelledby': 'create-title' },
    h('h2', { id: 'create-title', tabindex: '-1' }, 'Create a weekly room'),
    field('new-title', 'Name of the group', h('input', { id: 'new-title', name: 'title', type: 'text', maxlength: '80', autocomplete: 'off', 'aria-describedby': 'new-title-hint' }), 'Everyone with the link sees it. Each room’s name is its own.'),
    h(
      'fieldset',
      { class: 'org-weekdays' },
      h('legend', null, 'Meets every'),
      h('div', { class: 'weekday-grid' }, WEEKDAYS.map(([value, label]) => check(`day-${value}`, 'weekday', label, value))),
    ),
    h(
      'div',
      { class: 'org-row' },
      field('new-start', 'Starts at', h('input', { id: 'new-start', name: 'start', type: 'time', value: '19:00', required: true })),
      field('new-duration', 'Length, in minutes', h('input', { id: 'new-duration', name: 'duration', type: 'number', min: '5', max: '720', step: '5', value: '90', inputmode: 'numeric' })),
    ),
    field('new-zone', 'Time zone', zoneSelect(), 'The start time is in this time zone; each person sees it in their own.'),
    field(
      'new-early',
      'Open the waiting room this many minutes before the start',
      h('input', { id: 'new-early', name: 'early', type: 'number', min: '0', max: '120', step: '1', value: '15', inputmode: 'numeric', 'aria-describedby': 'new-early-hint' }),
      'Members who come earlier are told when it opens. A facilitator can open it at any time.',
    ),
    h(
      'fieldset',
      null,
      h('legend', null, 'Joining'),
      check('new-waiting', 'waitingRoom', 'Waiting room: a facilitator lets each person in', 'on', true),
      check('new-mute', 'muteOnEntry', 'New members need permission to unmute', 'on', true),
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
    submit.textContent = 'Creating…';
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
      submit.textContent = 'Create the room';
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
  if (!title) return { problem: 'Please give the room a name.', focus: 'new-title' };
  if ([...title].length > 80) return { problem: 'Please keep the name to 80 characters.', focus: 'new-title' };
  if (!weekdays.length) return { problem: 'Please choose at least one day of the week.', focus: 'day-mon' };
  if (!/^\d{2}:\d{2}$/.test(start)) return { problem: 'Please give a start time, such as 19:00.', focus: 'new-start' };
  if (!Number.isInteger(duration) || duration < 5 || duration > 720) {
    return { problem: 'Please give a length between 5 and 720 minutes.', focus: 'new-duration' };
  }
  if (!Number.isInteger(early) || early < 0 || early > 120) {
    return { problem: 'The waiting room can open between 0 and 120 minutes before the start.', focus: 'new-early' };
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
