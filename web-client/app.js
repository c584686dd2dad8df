// Circle's web client: the page's one controller. It reads the link (`#room=ID`, `#room=ID&key=SECRET`),
// shows the start page, the join page, the waiting room, the room or an end screen, and wires the
// session (websocket), the room model and the microphone together.
//
// Modules: config.js (server address), api.js (HTTP), session.js (websocket, request ids,
// resume/backoff), state.js (the room model), media.js (microphone and voice), views/*.js (drawing).

import { t } from './i18n.js';
import { Media } from './media.js';
import { RoomState, Part } from './state.js';
import { Session, resumeStore } from './session.js';
import { announce, restartingText } from './views/dom.js';
import { endView } from './views/end.js';
import { joinView } from './views/join.js';
import { roomView } from './views/room.js';
import { startView } from './views/start.js';
import { waitingView } from './views/waiting.js';

const root = document.getElementById('app');
const media = new Media();

let view = null; // the view on screen: { el, focus(), destroy(), update?(), setStatus?(), relabel?() }
let meeting = null; // { room, session, state } while in a meeting or its waiting room
let redraw = null; // draws the screen on show again, from what it shows (for a change of language)
let title = null; // the tab title's key in the catalogue, while it is one of the fixed titles

/**
 * Puts `next` on screen. `again` makes the same screen anew (in another language), keeping what the
 * person typed; `relabel` (the language changed) keeps the scroll position and the focus.
 */
function show(next, again = null, relabel = false) {
  view?.destroy?.();
  view = next;
  redraw = again;
  root.replaceChildren(next.el);
  if (relabel) return;
  window.scrollTo(0, 0);
  next.focus?.();
}

function setTitle(key) {
  title = key;
  document.title = key ? t(key) : document.title;
}

// A new language from the picker: the screen on show is drawn again in it, with the meeting, the
// typed text, the scroll position and the keyboard focus left as they were.
window.addEventListener('circle-language', () => {
  if (title) document.title = t(title);
  const active = document.activeElement;
  const focus = { id: active?.id || null, key: active?.closest?.('[data-key]')?.dataset.key ?? null };
  // (Not the picker itself: it already shows the new language.)
  const typed = [...root.querySelectorAll('input[id], textarea[id], select[id]')]
    .filter((el) => !el.closest('.language'))
    .map((el) => [el.id, el.value, el.checked]);
  const open = [...root.querySelectorAll('details[open]')].map((d) => [...root.querySelectorAll('details')].indexOf(d));
  const scroll = window.scrollY;
  if (view?.relabel) view.relabel();
  else if (redraw) redraw();
  else return;
  for (const [id, value, checked] of typed) {
    const el = document.getElementById(id);
    if (!el || !root.contains(el) || el.type === 'file' || el.readOnly) continue;
    if (el.type === 'checkbox' || el.type === 'radio') {
      if (el.checked !== checked) {
        el.checked = checked;
        el.dispatchEvent(new Event('change'));
      }
    } else if (el.value !== value && [...(el.options ?? [{ value }])].some((o) => o.value === value)) {
      el.value = value;
      el.dispatchEvent(new Event(el.tagName === 'SELECT' ? 'change' : 'input'));
    }
  }
  const details = [...root.querySelectorAll('details')];
  for (const i of open) if (details[i]) details[i].open = true;
  window.scrollTo(0, scroll);
  if (!active || active === document.body) return;
  const again = (focus.id && document.getElementById(focus.id)) || (focus.key && root.querySelector(`[data-key="${CSS.escape(focus.key)}"]`));
  (again ?? view.el.querySelector('h1'))?.focus({ preventScroll: true });
});

/** The link's parts: `{ room, key }` (either may be null). */
function readLink() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { room: params.get('room'), key: params.get('key') };
}

// A per-room random id this browser keeps, sent with `join` so that a ban covers a new join by link.
function deviceId(room) {
  const key = `circle.device.${room}`;
  let id = localStorage.getItem(key);
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    id = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    localStorage.setItem(key, id);
  }
  return id;
}

// The facilitator key is taken out of the address bar once used (so a shared screen or a copied
// address does not give it away) and kept for this tab only, for rejoining.
const keyStore = {
  load: (room) => sessionStorage.getItem(`circle.key.${room}`),
  save: (room, key) => sessionStorage.setItem(`circle.key.${room}`, key),
};

function route() {
  const { room, key } = readLink();
  if (meeting && meeting.room === room) return; // e.g. the key was just taken out of the address
  if (meeting) {
    // The address now names another meeting (or none): leave this one properly.
    const old = meeting;
    meeting = null;
    old.session.leave();
  }
  if (!room) {
    setTitle('title.start');
    show(startView());
    return;
  }
  if (key) keyStore.save(room, key);
  const token = resumeStore.load(room);
  if (token) {
    resumeMeeting(room, token);
  } else {
    showJoin(room);
  }
}

// Who this tab saw a facilitator mute (state.js `sanctioned`), so that after a reload a facilitator's
// mute does not read as the room's rule for newcomers. Ids only, for this tab only.
const sanctionStore = {
  load(room) {
    try {
      return JSON.parse(sessionStorage.getItem(`circle.muted.${room}`) ?? '[]');
    } catch {
      return [];
    }
  },
  save(room, ids) {
    if (ids.size) sessionStorage.setItem(`circle.muted.${room}`, JSON.stringify([...ids]));
    else sessionStorage.removeItem(`circle.muted.${room}`);
  },
};

// The name last used in a room, for this tab only: coming back (after leaving, or being removed)
// finds it filled in.
const nameStore = {
  load: (room) => sessionStorage.getItem(`circle.name.${room}`) ?? '',
  save: (room, name) => sessionStorage.setItem(`circle.name.${room}`, name),
};

// `notice`: a key in the catalogue.
// `typed`: the name typed so far (drawn again in another language, the page loads anew).
function showJoin(room, notice, relabel = false, typed = null) {
  setTitle('title.join');
  const secret = keyStore.load(room);
  show(
    joinView({
      room,
      facilitator: !!secret,
      media,
      notice: notice && t(notice),
      name: typed ?? nameStore.load(room),
      again: relabel,
      onJoin: async (name) => {
        await enterMeeting(room, (session) => session.join({ name, secret, device: deviceId(room) }));
        nameStore.save(room, name);
      },
    }),
    () => showJoin(room, notice, true, document.getElementById('name')?.value ?? null),
    relabel,
  );
}

async function resumeMeeting(room, token) {
  try {
    await enterMeeting(room, (session) => session.resume(token));
  } catch (e) {
    if (e.code === 'unreachable' || e.code === 'disconnected') {
      // Keep the token: reloading the page once the server answers still brings you back.
      showJoin(room, 'app.resume_unreachable');
      return;
    }
    resumeStore.clear(room);
    showJoin(room, 'app.resume_ended');
  }
}

/**
 * Opens a session with `start(session)` (join or resume) and, once joined, shows the meeting. Rejects
 * with the SessionError if the server refused.
 */
async function enterMeeting(room, start) {
  // The key and device id go with the session, so that after a server restart it can rejoin alone.
  const session = new Session(room, { secret: keyStore.load(room), device: deviceId(room) });
  const state = new RoomState({ sanctioned: sanctionStore.load(room) });
  const here = { room, session, state };
  let shown = null; // 'waiting' | 'room'

  const showForState = (relabel = false) => {
    const want = state.waiting ? 'waiting' : 'room';
    if (want === shown && !relabel) return;
    shown = want;
    setTitle(null);
    document.title = `${state.title} · Circle`;
    show(
      want === 'waiting'
        ? waitingView({ state, session, onLeave: () => session.leave() })
        : roomView({ state, session, media, onLeave: () => session.leave() }),
      () => showForState(true),
      relabel,
    );
  };

  // Listen before joining: events can follow `joined` at once.
  session.addEventListener('message', (ev) => {
    const msg = ev.detail;
    // Back after a server restart, in the room's new meeting: whether this person's microphone was
    // on (read before the new snapshot replaces it), so the room view turns it on again as a resume
    // would.
    const rejoined = msg.type === 'joined' && session.rejoined;
    const wasLive = rejoined && state.me?.self_muted === false;
    const { changed, announce: lines } = state.apply(msg);
    if (changed.has(Part.PEOPLE) || changed.has(Part.ALL)) sanctionStore.save(room, state.sanctioned);
    if (msg.type === 'links') {
      // A facilitator replaced a link: rejoining (and a reload of this tab) uses the new one.
      session.useLinks(msg);
      if (session.secret && keyStore.load(room)) keyStore.save(room, session.secret);
    }
    if (meeting !== here) return;
    for (const line of lines) announce(line);
    if (rejoined && state.waiting) announce(t('app.back_waiting'));
    if (changed.has(Part.VIEW)) showForState();
    if (rejoined && wasLive) view?.restoreUnmute?.();
    view?.update?.(changed);
  });
  session.addEventListener('status', (ev) => {
    if (meeting !== here) return;
    view?.setStatus?.(ev.detail);
    if (ev.detail === 'reconnecting') announce(t('app.connection_lost'));
    if (ev.detail === 'restarting') announce(restartingText());
    if (ev.detail === 'open' && shown) announce(t('app.reconnected'));
  });
  session.addEventListener('end', (ev) => {
    media.detach(session);
    sessionStorage.removeItem(`circle.draft.${room}`);
    sessionStorage.removeItem(`circle.muted.${room}`);
    sessionStorage.removeItem(`circle.volumes.${room}`);
    media.volumes.clear();
    if (meeting !== here) return;
    meeting = null;
    const end = ev.detail;
    setTitle('title.end');
    const showEnd = (relabel = false) => show(endView({ end, onRejoin: () => showJoin(room) }), () => showEnd(true), relabel);
    showEnd();
  });

  meeting = here;
  let joined;
  try {
    joined = await start(session);
  } catch (e) {
    if (meeting === here) meeting = null;
    throw e;
  }
  media.attach(session, joined, state);
  const { key } = readLink();
  if (key) history.replaceState(null, '', `#room=${encodeURIComponent(room)}`);
  showForState();
}

// The browser tests set this flag (before the page loads) to read the voice connection's statistics.
if (window.__CIRCLE_TEST__) {
  window.__circle = {
    media,
    get state() {
      return meeting?.state ?? null;
    },
  };
}

window.addEventListener('hashchange', route);
route();
