// The room: who is here, who has the floor and who waits to speak, the chat, your own controls, and
// (for facilitators) the controls that run the meeting. Also: per-person volume, sound settings
// (microphone, speaker, a test sound), your own level, a "tap to hear" prompt when the browser holds
// the voices back, keyboard shortcuts (hold Space to talk, M, H, ?; never while typing), and for
// facilitators a chime and the tab title when someone waits (both can be turned off, per device).
//
// Drawing: each part of the page is rebuilt from the model and swapped in only when it differs from
// what is shown (`swap`), keeping keyboard focus where it was. The chat log is the exception: it grows
// message by message, so reading and scrolling are never disturbed. The share timer ticks on its own.

import { t, tn } from '../i18n.js';
import { Part } from '../state.js';
import { canChooseSpeaker } from '../media.js';
import { confirmDialog, formatDuration, formatTime, h, icon, infoDialog, languagePicker, statusText, swap } from './dom.js';
import { requestErrorText } from './messages.js';
import { facilitatorPanel, personActions, queueActions, floorControls, waitingList } from './facilitator.js';

/**
 * @param {object} o
 * @param {import('../state.js').RoomState} o.state
 * @param {import('../session.js').Session} o.session
 * @param {import('../media.js').Media} o.media
 * @param {() => void} o.onLeave
 */
export function roomView({ state, session, media, onLeave }) {
  const header = h('header', { class: 'room-header' });
  const stage = h('section', { class: 'panel stage', 'aria-labelledby': 'speaking-title' });
  const people = h('section', { class: 'panel people', 'aria-labelledby': 'people-title' });
  const chatLog = h('div', {
    class: 'chat-log',
    role: 'log',
    // The announcer already reads new messages out; a second live region would read them twice.
    'aria-live': 'off',
    'aria-label': t('room.chat_log'),
    tabindex: '0',
  });
  const chatState = h('div', { class: 'chat-state' });
  const chatForm = buildChatForm();
  const chat = h(
    'section',
    { class: 'panel chat', 'aria-labelledby': 'chat-title' },
    h('h2', { id: 'chat-title', tabindex: '-1' }, icon('chat'), t('room.chat')),
    chatLog,
    chatState,
    chatForm.el,
  );
  const facilitator = h('aside', { class: 'panel facilitator', 'aria-labelledby': 'fac-title' });
  const controls = h('div', { class: 'controls-inner' });
  const toast = h('div', { class: 'toast', role: 'alert', hidden: true });
  const footer = h('footer', { class: 'controls', id: 'your-controls', 'aria-label': t('room.your_controls') }, toast, controls);
  const grid = h('div', { class: 'room-grid' }, stage, people, chat, facilitator);
  const main = h('main', { id: 'main', class: 'room' }, header, grid, footer);

  let connection = session.status;
  let replyTo = null; // a member a facilitator is replying to privately
  let renderQueued = false;
  let toastTimer = 0;
  let speaking = false;

  /** Sends a request; shows why if it is refused. Resolves to true on success. */
  async function act(type, fields = {}) {
    try {
      await session.request(type, fields);
      return true;
    } catch (e) {
      showToast(requestErrorText(e));
      return false;
    }
  }

  function showToast(text) {
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (toast.hidden = true), 7000);
  }

  const prefs = loadPrefs();
  // Per-person volumes survive a reload of the tab (ids and numbers only, this tab only).
  const volumesKey = `circle.volumes.${session.room}`;
  try {
    for (const [id, v] of Object.entries(JSON.parse(sessionStorage.getItem(volumesKey) ?? '{}'))) {
      if (!media.volumes.has(id)) media.volumes.set(id, Number(v));
    }
  } catch {
    // A damaged entry: every voice at full volume.
  }
  media.applyVolumes();
  let seenWaiting = new Set(state.isFacilitator ? state.waitingList().map((p) => p.id) : []);

  const ctx = {
    state,
    act,
    prefs,
    setPref(key, value) {
      prefs[key] = value;
      savePrefs(prefs);
      queueRender();
    },
    confirm: confirmDialog,
    setReplyTo(id) {
      replyTo = id;
      chatForm.refresh();
      chatForm.focus();
    },
    forceRender: () => render(true),
    /** A standing room's links as this facilitator knows them: the latest `links`, else this page's. */
    links() {
      const join = state.links?.join ?? `${location.origin}${location.pathname}#room=${encodeURIComponent(session.link)}`;
      const sent = state.links?.facilitator;
      const facilitator = sent && new URL(sent, location.href).hash.includes('key=') ? sent : session.secret ? `${join}&key=${encodeURIComponent(session.secret)}` : null;
      return { join, facilitator };
    },
  };

  // ---- header ---------------------------------------------------------------------------------

  function renderHeader() {
    const c = state.counts;
    const bits = [];
    if (c) {
      bits.push(tn('room.members', c.members), tn('room.facilitators', c.facilitators));
    }
    const waiting = state.isFacilitator ? state.waitingList().length : 0;
    return [
      h(
        'div',
        { class: 'room-title' },
        h('h1', { id: 'room-title', tabindex: '-1' }, state.title),
        // Seen only when focused: the first stop after the title, straight to your own controls.
        h(
          'button',
          { type: 'button', class: 'skip-link', key: 'skip', onclick: () => controls.querySelector('button:not(:disabled)')?.focus() },
          t('room.skip'),
        ),
        h(
          'p',
          { class: 'counts' },
          icon('people'),
          h('span', { class: 'counts-text' }, bits.join(' · ')),
          state.settings.locked ? h('span', { class: 'badge badge-quiet' }, icon('lock'), t('room.locked')) : null,
          state.settings.one_speaker ? h('span', { class: 'badge badge-quiet' }, t('room.one_speaker')) : null,
        ),
      ),
      media.playbackBlocked
        ? h(
            'button',
            // The browser held the room's voices back until a tap or a key (after a reload).
            { type: 'button', class: 'btn btn-primary btn-hear', key: 'hear', onclick: () => media.resumePlayback() },
            icon('speaker'),
            t('room.tap_to_hear'),
          )
        : null,
      waiting > 0
        ? h(
            'button',
            {
              type: 'button',
              class: 'btn btn-small btn-attention',
              key: 'waiting-jump',
              onclick: () => document.getElementById('waiting-title')?.focus(),
            },
            tn('room.waiting_to_join', waiting),
          )
        : null,
      h(
        'p',
        // Screen readers hear of it from the announcer (this element is redrawn, so no live region).
        { class: `connection${connection === 'reconnecting' || connection === 'restarting' ? ' is-reconnecting' : ''}` },
        statusText(connection),
      ),
    ];
  }

  // ---- speaking: the floor and the queue --------------------------------------------------------

  function renderStage() {
    const speaker = state.floor.speaker;
    const queue = state.floor.queue;
    const fac = state.isFacilitator;
    let card;
    if (speaker) {
      const mine = speaker.participant === state.you;
      card = h(
        'div',
        { class: `floor-card${mine ? ' is-me' : ''}`, 'data-floor': speaker.participant },
        h('p', { class: 'floor-label' }, mine ? t('room.you_have_floor') : t('room.has_floor')),
        h('p', { class: 'floor-name' }, mine ? t('room.name_you', { name: speaker.name }) : speaker.name),
        speaker.ends_at != null ? timerBlock(speaker) : h('p', { class: 'floor-untimed' }, t('room.untimed')),
        mine ? floorHint(speaker) : null,
      );
    } else {
      card = h(
        'div',
        { class: 'floor-card is-empty' },
        h('p', { class: 'floor-label' }, t('room.no_floor')),
        h('p', { class: 'floor-hint' }, queue.length ? t('room.next_hint') : t('room.raise_hint')),
      );
    }
    return [
      h('h2', { id: 'speaking-title', tabindex: '-1' }, t('room.speaking')),
      card,
      fac ? floorControls(ctx) : null,
      h('h3', { id: 'queue-title' }, t('room.raised_hands', { count: queue.length })),
      queue.length
        ? h(
            'ol',
            { class: 'queue', 'aria-labelledby': 'queue-title' },
            queue.map((entry, i) => {
              const mine = entry.participant === state.you;
              return h(
                'li',
                { class: `queue-item${mine ? ' is-me' : ''}`, key: `q-${entry.participant ?? `anon-${i}`}` },
                h('span', { class: 'queue-pos', 'aria-hidden': 'true' }, String(i + 1)),
                h('span', { class: 'queue-name' }, entry.name ?? t('room.a_member'), mine ? h('span', { class: 'you' }, ` ${t('room.you')}`) : null),
                fac && entry.participant ? queueActions(ctx, entry, i, queue.length) : null,
              );
            }),
          )
        : h('p', { class: 'empty' }, t('room.no_hands')),
    ];
  }

  /**
   * What the floor holder is asked to do, if anything: one instruction, never one the controls
   * contradict (a facilitator's mute is explained next to the disabled Unmute).
   */
  function floorHint(speaker) {
    const me = state.me;
    let text = null;
    if (speaker.ends_at != null && (state.share.expired || state.shareRemainingMs() === 0)) {
      text = t('room.time_up_hint');
    } else if (me?.self_muted && !me.muted_by_facilitator) {
      text = t('room.unmute_hint');
    }
    return text ? h('p', { class: 'floor-hint' }, text) : null;
  }

  function timerBlock(speaker) {
    const t = timerState(speaker);
    return h(
      'div',
      { class: `timer${t.cls}` },
      h('p', { class: 'timer-line' }, icon('clock'), h('span', { class: 'timer-text' }, t.text)),
      h('div', { class: 'timer-bar', 'aria-hidden': 'true' }, h('div', { class: 'timer-fill', style: `width:${t.pct}%` })),
    );
  }

  function timerState(speaker) {
    const left = state.shareRemainingMs() ?? 0;
    const total = Math.max(1, speaker.ends_at - speaker.since);
    const warnMs = (state.settings.share_warning_secs ?? 0) * 1000;
    const expired = state.share.expired || left <= 0;
    const warning = !expired && (state.share.warned || (warnMs > 0 && left <= warnMs));
    return {
      cls: expired ? ' is-expired' : warning ? ' is-warning' : '',
      text: expired ? t('room.time_up') : t('room.time_left', { time: formatDuration(left) }),
      pct: Math.round((left / total) * 100),
    };
  }

  /** Moves the countdown without redrawing anything else. */
  function tick() {
    const speaker = state.floor.speaker;
    const el = stage.querySelector('.timer');
    if (!speaker || speaker.ends_at == null || !el) return;
    const t = timerState(speaker);
    el.className = `timer${t.cls}`;
    el.querySelector('.timer-text').textContent = t.text;
    el.querySelector('.timer-fill').style.width = `${t.pct}%`;
  }
  const ticker = setInterval(tick, 250);

  // ---- people ---------------------------------------------------------------------------------

  function renderPeople() {
    const roster = state.roster();
    const fac = state.isFacilitator;
    const here = state.counts ? state.counts.members + state.counts.facilitators : roster.length;
    const hidden = state.settings.roster_privacy && !fac;
    return [
      fac ? waitingList(ctx) : null,
      h('h2', { id: 'people-title', tabindex: '-1' }, icon('people'), t('room.people_here', { count: here })),
      hidden ? h('p', { class: 'hint' }, t('room.private_roster')) : null,
      h(
        'ul',
        { class: 'roster', 'aria-labelledby': 'people-title' },
        roster.map((p) => personRow(p)),
      ),
      hidden && here > roster.length
        ? h('p', { class: 'hint' }, tn('room.others', here - roster.length))
        : null,
    ];
  }

  function personRow(p) {
    const mine = p.id === state.you;
    const hasFloor = state.floor.speaker?.participant === p.id;
    const reconnecting = p.presence === 'reconnecting';
    const badges = [];
    if (p.role === 'facilitator') badges.push(h('span', { class: 'badge badge-role' }, t('badge.facilitator')));
    if (hasFloor) badges.push(h('span', { class: 'badge badge-floor' }, t('badge.floor')));
    if (p.hand_raised_at != null) badges.push(h('span', { class: 'badge badge-hand' }, icon('hand'), t('badge.hand')));
    if (state.mutedOnEntry(p)) {
      // The room's rule for newcomers, not a sanction.
      badges.push(h('span', { class: 'badge badge-quiet' }, icon('mic-off'), t('badge.waiting_turn')));
    } else if (p.muted_by_facilitator) {
      badges.push(h('span', { class: 'badge badge-caution' }, icon('mic-off'), t('badge.muted_by_facilitator')));
    } else if (p.self_muted) {
      badges.push(h('span', { class: 'badge badge-quiet' }, icon('mic-off'), t('badge.muted')));
    } else if (!mayBeHeard(p)) {
      badges.push(h('span', { class: 'badge badge-quiet', title: t('badge.not_heard_title') }, icon('mic'), t('badge.not_heard')));
    } else {
      badges.push(h('span', { class: 'badge badge-live' }, icon('mic'), t('badge.mic_on')));
    }
    if (!p.chat_allowed) badges.push(h('span', { class: 'badge badge-quiet' }, t('badge.chat_paused')));
    if (reconnecting) badges.push(h('span', { class: 'badge badge-caution' }, t('badge.reconnecting')));
    const cls = ['person'];
    if (mine) cls.push('is-me');
    if (reconnecting) cls.push('is-reconnecting');
    if (hasFloor) cls.push('has-floor');
    if ((mine && speaking) || state.speaking.has(p.id)) cls.push('is-speaking');
    return h(
      'li',
      { class: cls.join(' '), key: `p-${p.id}`, 'data-participant': p.id },
      // Lit while they speak: from your own microphone's level, and from the server's `speakers`
      // events once the voice relay sends them.
      h('span', { class: 'speaking-dot', 'aria-hidden': 'true', title: t('room.speaking_dot') }),
      h(
        'div',
        { class: 'person-main' },
        h('span', { class: 'person-name' }, p.name, mine ? h('span', { class: 'you' }, ` ${t('room.you')}`) : null),
        h('span', { class: 'badges' }, badges),
      ),
      mine ? null : volumeControl(p),
      state.isFacilitator && !mine ? personActions(ctx, p) : null,
    );
  }

  /** How loud this person plays on this device (media.setVolume); kept for this page only. */
  function volumeControl(p) {
    const value = Math.round((media.volumes.get(p.id) ?? 1) * 100);
    return h(
      'label',
      { class: 'volume', title: t('room.volume_for', { name: p.name }) },
      icon('speaker'),
      h('span', { class: 'visually-hidden' }, t('room.volume_for', { name: p.name })),
      h('input', {
        type: 'range',
        min: '0',
        max: '100',
        step: '10',
        value: String(value),
        key: `vol-${p.id}`,
        'aria-valuetext': `${value}%`,
        oninput: (ev) => {
          media.setVolume(p.id, Number(ev.target.value) / 100);
          sessionStorage.setItem(volumesKey, JSON.stringify(Object.fromEntries(media.volumes)));
          ev.target.setAttribute('value', ev.target.value);
          ev.target.setAttribute('aria-valuetext', `${ev.target.value}%`);
        },
      }),
    );
  }

  /**
   * Whether an unmuted person's voice reaches the room: for yourself the server's `hearing`; for
   * others the same rule as far as this page can see it (one-speaker mode lets only the floor
   * holder and facilitators be heard).
   */
  function mayBeHeard(p) {
    if (p.id === state.you) return state.mayBeHeard;
    if (p.presence === 'reconnecting') return false;
    if (!state.settings.one_speaker) return true;
    return p.role === 'facilitator' || state.floor.speaker?.participant === p.id;
  }

  // ---- chat -----------------------------------------------------------------------------------

  function chatItem(m) {
    const mine = m.from === state.you;
    const author = state.participants.get(m.from);
    let meta = null;
    if (m.private) {
      if (m.to) meta = m.to === state.you ? t('chat.private_to_you') : t('chat.private_to', { name: state.nameOf(m.to) ?? t('chat.a_member') });
      else if (author?.role === 'facilitator') meta = t('chat.private_facilitators_only');
      else meta = t('chat.private_to_facilitators');
    }
    const fac = state.isFacilitator;
    const tools = [];
    if (fac && !m.private) {
      tools.push(
        h(
          'button',
          {
            type: 'button',
            class: 'btn-link',
            'aria-label': t('chat.delete_from', { name: m.name }),
            onclick: () => act('delete_chat', { message: m.id }),
          },
          t('chat.delete'),
        ),
      );
    }
    if (fac && m.private && !mine && author && author.role !== 'facilitator') {
      tools.push(
        h(
          'button',
          { type: 'button', class: 'btn-link', 'aria-label': t('chat.reply_to', { name: m.name }), onclick: () => ctx.setReplyTo(m.from) },
          t('chat.reply'),
        ),
      );
    }
    return h(
      'article',
      { class: `msg${m.private ? ' is-private' : ''}${mine ? ' is-mine' : ''}`, 'data-message': String(m.id) },
      h(
        'header',
        { class: 'msg-head' },
        h('span', { class: 'msg-name' }, mine ? t('room.name_you', { name: m.name }) : m.name),
        h('time', { datetime: new Date(m.at).toISOString() }, formatTime(m.at)),
        tools.length ? h('span', { class: 'msg-tools' }, tools) : null,
      ),
      meta ? h('p', { class: 'msg-meta' }, meta) : null,
      h('p', { class: 'msg-text' }, m.text),
    );
  }

  function renderChatLog(full) {
    const nearBottom = chatLog.scrollHeight - chatLog.scrollTop - chatLog.clientHeight < 80;
    if (full) {
      chatLog.replaceChildren(...state.chat.map(chatItem));
      if (!state.chat.length) chatLog.append(h('p', { class: 'empty chat-empty' }, t('chat.empty')));
    } else {
      for (const id of state.chatDeleted) chatLog.querySelector(`[data-message="${id}"]`)?.remove();
      if (state.chatAdded.length) chatLog.querySelector('.chat-empty')?.remove();
      for (const m of state.chatAdded) chatLog.append(chatItem(m));
      // Keep the page's copy bounded like the model's.
      while (chatLog.childElementCount > state.chat.length && chatLog.firstElementChild?.dataset.message) {
        chatLog.firstElementChild.remove();
      }
    }
    if (full || nearBottom || state.chatAdded.some((m) => m.from === state.you)) {
      chatLog.scrollTop = chatLog.scrollHeight;
    }
  }

  function buildChatForm() {
    const to = h('select', { id: 'chat-to', name: 'to' });
    const input = h('textarea', {
      id: 'chat-input',
      name: 'text',
      rows: '2',
      maxlength: '2000',
      placeholder: t('chat.placeholder'),
      'aria-describedby': 'chat-to-hint',
    });
    const hint = h('p', { class: 'hint', id: 'chat-to-hint' });
    const send = h('button', { type: 'submit', class: 'btn btn-primary' }, t('chat.send'));
    const el = h(
      'form',
      { class: 'chat-form', novalidate: true },
      h('div', { class: 'chat-to-row' }, h('label', { for: 'chat-to' }, t('chat.send_to')), to),
      h('label', { for: 'chat-input', class: 'visually-hidden' }, t('chat.message')),
      h('div', { class: 'chat-input-row' }, input, send),
      hint,
    );
    // The draft survives a reload of the tab (this tab only; it goes when the meeting ends for you).
    const draftKey = `circle.draft.${session.room}`;
    input.value = sessionStorage.getItem(draftKey) ?? '';
    const saveDraft = () => {
      if (input.value) sessionStorage.setItem(draftKey, input.value);
      else sessionStorage.removeItem(draftKey);
    };
    input.addEventListener('input', saveDraft);
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        el.requestSubmit();
      }
    });
    to.addEventListener('change', () => {
      if (!to.value.startsWith('to:')) replyTo = null;
      refresh();
    });
    el.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      const target = to.value;
      let ok;
      send.disabled = true;
      if (target === 'room') ok = await act('chat', { text });
      else if (target === 'facilitators') ok = await act('chat_private', { text });
      else ok = await act('chat_private', { text, to: target.slice(3) });
      send.disabled = false;
      if (ok) {
        input.value = '';
        saveDraft();
        // A private line is one message, not a mode: the next one goes to everyone again.
        if (target !== 'room') {
          replyTo = null;
          refresh();
          to.value = to.options[0].value;
          refresh();
        }
      }
      input.focus();
    });

    /** Who you may write to, and whether you may write at all, from the settings and your state. */
    function refresh() {
      const me = state.me;
      const fac = state.isFacilitator;
      const roomChat = fac || state.settings.chat_enabled;
      const allowed = fac || (me?.chat_allowed ?? true);
      if (replyTo && !state.participants.has(replyTo)) replyTo = null;
      const options = [];
      if (roomChat) options.push(['room', t('chat.everyone')]);
      options.push(['facilitators', fac ? t('chat.facilitators_only') : t('chat.the_facilitators')]);
      if (fac && replyTo) options.push([`to:${replyTo}`, t('chat.reply_option', { name: state.nameOf(replyTo) })]);
      const previous = replyTo && fac ? `to:${replyTo}` : to.value;
      const signature = JSON.stringify(options);
      if (signature !== to.dataset.options) {
        to.dataset.options = signature;
        to.replaceChildren(...options.map(([v, label]) => h('option', { value: v }, label)));
        to.value = options.some(([v]) => v === previous) ? previous : options[0][0];
      }
      input.disabled = !allowed;
      send.disabled = !allowed;
      to.disabled = !allowed;
      let note = '';
      if (!allowed) note = t('chat.paused');
      else if (to.value === 'facilitators') note = fac ? t('chat.note_facilitators') : t('chat.note_facilitators_member');
      else if (to.value.startsWith('to:')) note = t('chat.note_reply', { name: state.nameOf(replyTo) });
      else note = t('chat.note_everyone');
      hint.textContent = note;
      let stateNote = null;
      if (!state.settings.chat_enabled) {
        stateNote = fac
          ? t('chat.off_facilitator')
          : t('chat.off_member');
      }
      swap(chatState, stateNote ? h('p', { class: 'notice' }, stateNote) : []);
    }
    return { el, refresh, focus: () => input.focus() };
  }

  // ---- your controls --------------------------------------------------------------------------

  function renderControls() {
    const me = state.me;
    if (!me) return [];
    const offline = connection !== 'open';
    const byFac = me.muted_by_facilitator;
    const muted = me.self_muted;
    const hand = me.hand_raised_at != null;
    const waitingTurn = state.mutedOnEntry(me);
    let note = '';
    if (waitingTurn) {
      note = hand
        ? t('controls.waiting_turn_hand')
        : t('controls.waiting_turn');
    } else if (byFac) note = t('controls.muted_by_facilitator');
    else if (media.permission === 'denied') note = t('controls.denied');
    else if (media.permission === 'unavailable') note = t('controls.no_mic');
    else if (!muted && !state.mayBeHeard && state.settings.one_speaker) note = t('controls.not_heard');
    else if (muted) note = t('controls.muted');
    else note = t('controls.live');
    return [
      h(
        'button',
        {
          type: 'button',
          key: 'mic',
          class: `btn btn-control${muted ? '' : ' is-live'}${!muted && speaking ? ' is-speaking' : ''}`,
          disabled: byFac || offline,
          'aria-describedby': 'mic-note',
          onclick: () => toggleMute(),
        },
        icon(muted ? 'mic-off' : 'mic'),
        muted ? t('controls.unmute') : t('controls.mute'),
      ),
      // Your own level while the microphone is open: you see that it hears you.
      media.isOpen
        ? h(
            'span',
            { class: 'mic-level', role: 'meter', 'aria-label': t('controls.level'), 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0' },
            h('span', { class: 'mic-level-bar' }),
          )
        : null,
      h(
        'button',
        {
          type: 'button',
          key: 'hand',
          class: `btn btn-control${hand ? ' is-on' : ''}`,
          'aria-pressed': hand ? 'true' : 'false',
          disabled: offline,
          onclick: () => act(hand ? 'lower_hand' : 'raise_hand'),
        },
        icon('hand'),
        hand ? t('controls.lower_hand') : t('controls.raise_hand'),
      ),
      h('p', { id: 'mic-note', class: `controls-note${byFac && !waitingTurn ? ' is-caution' : ''}` }, note),
      h(
        'span',
        { class: 'controls-extra' },
        h('button', { type: 'button', key: 'sound', class: 'btn-link', onclick: () => openSoundSettings() }, t('controls.sound')),
        h('button', { type: 'button', key: 'shortcuts', class: 'btn-link shortcuts-link', onclick: () => showShortcuts() }, t('controls.shortcuts')),
        languagePicker(),
      ),
      h('button', { type: 'button', key: 'leave', class: 'btn btn-control btn-leave', onclick: () => leave() }, t('controls.leave')),
    ];
  }

  function toggleMute() {
    return setMute(!(state.me?.self_muted ?? true));
  }

  async function setMute(mute) {
    const me = state.me;
    if (!me) return;
    if (mute) {
      // Close the microphone first: muting must never wait on the network.
      await media.setMuted(true);
      await act('set_self_mute', { muted: true });
      return;
    }
    const ok = await media.setMuted(false);
    if (!ok) {
      render(true);
      showToast(
        media.permission === 'denied'
          ? t('controls.mic_blocked')
          : t('mic.none'),
      );
      return;
    }
    if (!(await act('set_self_mute', { muted: false }))) await media.setMuted(true);
  }

  // ---- sound settings -------------------------------------------------------------------------

  async function openSoundSettings() {
    const micSel = h('select', { id: 'sound-mic' });
    const spkSel = h('select', { id: 'sound-speaker' });
    const status = h('p', { class: 'hint', role: 'status' });
    const level = h('span', { class: 'mic-level-bar' });
    const meter = h(
      'span',
      { class: 'mic-level mic-level-wide', role: 'meter', 'aria-label': t('mic.level'), 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0' },
      level,
    );
    const fill = async () => {
      const { inputs, outputs } = await media.devices();
      const options = (list, chosen, none) =>
        list.length ? list.map((d) => h('option', { value: d.id, selected: d.id === chosen }, d.label)) : [h('option', { value: '' }, none)];
      micSel.replaceChildren(...options(inputs, media.micDevice, t('sound.default_mic')));
      spkSel.replaceChildren(...options(outputs, media.speakerDevice, t('sound.default_speaker')));
    };
    micSel.addEventListener('change', async () => {
      const ok = await media.setMicDevice(micSel.value);
      status.textContent = ok ? t('sound.mic_changed') : t('sound.mic_failed');
      if (!ok && !state.me?.self_muted) await setMute(true);
      render(true);
    });
    spkSel.addEventListener('change', async () => {
      await media.setSpeakerDevice(spkSel.value);
      status.textContent = t('sound.speaker_changed');
    });
    const test = h('button', { type: 'button', class: 'btn' }, t('sound.test'));
    test.addEventListener('click', async () => {
      test.disabled = true;
      status.textContent = t('sound.playing');
      const ok = await media.chime();
      test.disabled = false;
      status.textContent = ok ? t('sound.heard') : t('sound.failed');
    });
    const onLevel = (ev) => paintLevel(meter, level, ev.detail);
    media.addEventListener('level', onLevel);
    navigator.mediaDevices?.addEventListener?.('devicechange', fill);
    await fill();
    await infoDialog({
      title: t('sound.title'),
      content: [
        h('div', { class: 'field' }, h('label', { for: 'sound-mic' }, t('sound.mic')), micSel),
        media.isOpen ? meter : h('p', { class: 'hint' }, t('sound.mic_off')),
        canChooseSpeaker()
          ? h('div', { class: 'field' }, h('label', { for: 'sound-speaker' }, t('sound.speaker')), spkSel)
          : h('p', { class: 'hint' }, t('sound.default_only')),
        h('div', { class: 'actions' }, test),
        status,
      ],
      onClose: () => {
        media.removeEventListener('level', onLevel);
        navigator.mediaDevices?.removeEventListener?.('devicechange', fill);
      },
    });
  }

  // ---- keyboard shortcuts ---------------------------------------------------------------------

  function showShortcuts() {
    const row = (keys, what) => [h('dt', null, h('kbd', null, keys)), h('dd', null, what)];
    infoDialog({
      title: t('controls.shortcuts'),
      content: [
        h(
          'dl',
          { class: 'shortcuts' },
          row(t('keys.space'), t('keys.space_what')),
          row('M', t('keys.m_what')),
          row('H', t('keys.h_what')),
          row('?', t('keys.help_what')),
        ),
        h('p', { class: 'hint' }, t('keys.hint')),
      ],
    });
  }

  let talkHeld = null; // the unmute of a held Space, while it is held
  const typing = (el) => !!el?.closest?.('input, textarea, select, [contenteditable=""], [contenteditable="true"]');
  const pressable = (el) => !!el?.closest?.('button, a[href], summary, [role="button"]');
  const onKeyDown = (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
    if (typing(ev.target) || document.querySelector('dialog[open]')) return;
    const me = state.me;
    if (!me) return;
    if (ev.code === 'Space' || ev.key === ' ') {
      if (pressable(ev.target)) return;
      ev.preventDefault(); // and the page does not scroll
      if (ev.repeat || talkHeld || !me.self_muted || me.muted_by_facilitator || connection !== 'open') return;
      talkHeld = setMute(false);
      return;
    }
    if (ev.repeat) return;
    const key = ev.key.toLowerCase();
    if (key === 'm' && !me.muted_by_facilitator && connection === 'open') {
      ev.preventDefault();
      toggleMute();
    } else if (key === 'h' && connection === 'open') {
      ev.preventDefault();
      act(me.hand_raised_at != null ? 'lower_hand' : 'raise_hand');
    } else if (ev.key === '?') {
      ev.preventDefault();
      showShortcuts();
    }
  };
  const releaseTalk = async () => {
    if (!talkHeld) return;
    const unmuting = talkHeld;
    talkHeld = null;
    await unmuting;
    await setMute(true);
  };
  const onKeyUp = (ev) => {
    if (ev.code === 'Space' || ev.key === ' ') releaseTalk();
  };
  document.addEventListener('keydown', onKeyDown);
  document.addEventListener('keyup', onKeyUp);
  // Space released in another window: it still ends the talk.
  window.addEventListener('blur', releaseTalk);

  // ---- arrivals -------------------------------------------------------------------------------

  /** A facilitator hears a soft chime when someone new waits, and sees the count in the tab title. */
  function alertArrivals() {
    const waiting = state.isFacilitator ? state.waitingList() : [];
    const fresh = waiting.some((p) => !seenWaiting.has(p.id));
    seenWaiting = new Set(waiting.map((p) => p.id));
    if (fresh && prefs.arrivalSound) media.chime();
    const base = `${state.title} · Circle`;
    document.title = waiting.length && prefs.arrivalTitle ? t('room.waiting_title', { count: waiting.length, title: base }) : base;
  }

  // Asked first, for everyone: on a phone, Leave is a thumb's slip away from the other controls.
  async function leave() {
    const ok = await confirmDialog({
      title: t('leave.title'),
      body: state.isFacilitator ? t('leave.body_facilitator') : t('leave.body'),
      confirm: t('controls.leave'),
      cancel: t('leave.stay'),
    });
    if (ok) onLeave();
  }

  // ---- drawing --------------------------------------------------------------------------------

  function render(force = false) {
    renderQueued = false;
    const opt = (...fallback) => ({ force, fallback });
    swap(header, renderHeader(), opt('room-title'));
    swap(stage, renderStage(), opt('speaking-title'));
    swap(people, renderPeople(), opt('waiting-title', 'people-title'));
    swap(facilitator, state.isFacilitator ? facilitatorPanel(ctx) : [], opt('fac-title', 'chat-title'));
    facilitator.hidden = !state.isFacilitator;
    main.classList.toggle('is-facilitator', state.isFacilitator);
    swap(controls, renderControls(), opt('chat-title'));
    chatForm.refresh();
    alertArrivals();
  }

  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    setTimeout(render, 0);
  }

  // One open actions menu at a time: a click anywhere else closes it.
  const closeMenus = (ev) => {
    for (const d of main.querySelectorAll('details.person-actions[open]')) {
      if (!d.contains(ev.target)) d.open = false;
    }
  };
  document.addEventListener('click', closeMenus);

  // Who is speaking changes several times a second while people talk: the dots and the mic button's
  // glow are painted on the elements already there, never by a redraw (which would replace the
  // roster under a pointer, closing a hover or losing a click). The classes are the ones `personRow`
  // and `renderControls` would draw, so a later redraw finds nothing to change.
  function paintSpeaking() {
    for (const el of people.querySelectorAll('.person[data-participant]')) {
      const id = el.dataset.participant;
      el.classList.toggle('is-speaking', (id === state.you && speaking) || state.speaking.has(id));
    }
    const mic = controls.querySelector('[data-key="mic"]');
    mic?.classList.toggle('is-speaking', mic.classList.contains('is-live') && speaking);
  }

  const onSpeaking = (ev) => {
    speaking = ev.detail;
    paintSpeaking();
  };
  media.addEventListener('speaking', onSpeaking);

  const onLevel = (ev) => {
    const meter = controls.querySelector('.mic-level');
    if (meter) paintLevel(meter, meter.firstChild, ev.detail);
  };
  media.addEventListener('level', onLevel);
  const onPlayback = () => queueRender();
  media.addEventListener('playback', onPlayback);
  const onMicLost = async () => {
    showToast(t('controls.mic_lost'));
    if (state.me && !state.me.self_muted) await act('set_self_mute', { muted: true });
    render(true);
  };
  media.addEventListener('mic-lost', onMicLost);

  // The mute state the server keeps rules the microphone. When it turns to muted (a facilitator's
  // mute, "mute all") the microphone closes, and nothing more is sent. Unmuting
  // opens the microphone before asking the server (`toggleMute`), so only a change to muted is
  // followed here, never the other way while that request is in flight.
  let wasMuted = state.me?.self_muted ?? true;
  let restoring = false; // back after a server restart, with the microphone on before it
  function followMute() {
    const muted = state.me?.self_muted ?? true;
    if (restoring) {
      // The new meeting starts everyone muted; this person had their microphone on, and it is still
      // open: turn it on again, as a resume would have kept it (unless a facilitator's mute came back).
      restoring = false;
      wasMuted = muted;
      if (muted && !state.me?.muted_by_facilitator && media.isOpen) setMute(false);
      else if (muted && media.isOpen) media.setMuted(true);
      return;
    }
    if (muted && !wasMuted && media.isOpen) media.setMuted(true);
    wasMuted = muted;
  }
  // Back in the room unmuted (the tab was reloaded and resumed): open the microphone again, or, if
  // that is not possible now, tell the server you are muted rather than show a live microphone.
  if (!wasMuted && !media.isOpen) {
    media.setMuted(false).then(async (ok) => {
      if (!ok) await act('set_self_mute', { muted: true });
      queueRender();
    });
  }

  render(true);
  renderChatLog(true);

  return {
    el: main,
    focus: () => document.getElementById('room-title')?.focus(),
    /** Redraws what `changed` touched (a Set of Part). */
    update(changed) {
      if (changed.size === 1 && changed.has(Part.SPEAKING)) {
        paintSpeaking();
        return;
      }
      if (changed.has(Part.ALL)) {
        renderChatLog(true);
      } else if (changed.has(Part.CHAT)) {
        renderChatLog(false);
      }
      followMute();
      queueRender();
    },
    setStatus(status) {
      connection = status;
      queueRender();
    },
    /** Called before the `update` of a rejoin's snapshot, when the microphone was on before it. */
    restoreUnmute() {
      restoring = true;
    },
    destroy() {
      clearInterval(ticker);
      clearTimeout(toastTimer);
      media.removeEventListener('speaking', onSpeaking);
      media.removeEventListener('level', onLevel);
      media.removeEventListener('playback', onPlayback);
      media.removeEventListener('mic-lost', onMicLost);
      document.removeEventListener('click', closeMenus);
      document.removeEventListener('keydown', onKeyDown);
      document.removeEventListener('keyup', onKeyUp);
      window.removeEventListener('blur', releaseTalk);
    },
  };
}

/** Paints a level (0..1) on a meter without redrawing it. */
function paintLevel(meter, bar, level) {
  const pct = Math.round(level * 100);
  bar.style.width = `${pct}%`;
  meter.setAttribute('aria-valuenow', String(pct));
}

// This device's own preferences (not the meeting's): a facilitator's arrival alerts.
const PREFS_KEY = 'circle.prefs';
function loadPrefs() {
  const defaults = { arrivalSound: true, arrivalTitle: true };
  try {
    return { ...defaults, ...JSON.parse(localStorage.getItem(PREFS_KEY) ?? '{}') };
  } catch {
    return defaults;
  }
}
function savePrefs(prefs) {
  localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
}

