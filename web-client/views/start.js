// The start page: create a meeting, then hand out its two links.

import { createRoom } from '../api.js';
import { announce, copyText, h } from './dom.js';

const TIMER_CHOICES = [
  ['', 'No timer'],
  ['60', '1 minute'],
  ['120', '2 minutes'],
  ['180', '3 minutes'],
  ['300', '5 minutes'],
  ['600', '10 minutes'],
  ['other', 'Other length…'],
];

export function startView() {
  const error = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
  const keyDetails = h(
    'details',
    { class: 'server-key' },
    h('summary', null, 'Server key (only if your server asks for one)'),
    h('label', { for: 'operator-key' }, 'Server key'),
    h('input', { id: 'operator-key', name: 'operatorKey', type: 'password', autocomplete: 'off' }),
  );
  const otherSecs = h(
    'div',
    { class: 'field', hidden: true },
    h('label', { for: 'share-other' }, 'Share length in seconds'),
    h('input', { id: 'share-other', name: 'shareOther', type: 'number', min: '5', max: '3600', step: '1', value: '90', inputmode: 'numeric' }),
  );
  const timer = h(
    'select',
    {
      id: 'share-secs',
      name: 'shareSecs',
      onchange: () => {
        otherSecs.hidden = timer.value !== 'other';
        timerExtras.hidden = timer.value === '';
      },
    },
    TIMER_CHOICES.map(([v, label]) => h('option', { value: v }, label)),
  );
  const timerExtras = h(
    'div',
    { hidden: true },
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'share-warning' }, 'Warn the speaker this many seconds before the end'),
      h('input', { id: 'share-warning', name: 'shareWarning', type: 'number', min: '0', max: '600', step: '1', value: '30', inputmode: 'numeric' }),
    ),
    checkbox('auto-end', 'autoEnd', 'Take the floor back when the time is up', false),
  );
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create the meeting');
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'start-title' },
    h('h1', { id: 'start-title', tabindex: '-1' }, 'Start a meeting'),
    h('p', { class: 'lead' }, 'Create a private room for your group. You get a link for members and a link for you, the facilitator. Nothing is recorded, and everything is forgotten when the meeting ends.'),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'title' }, 'Meeting name'),
      h('input', { id: 'title', name: 'title', type: 'text', maxlength: '80', placeholder: 'Tuesday evening circle', autocomplete: 'off' }),
      h('p', { class: 'hint' }, 'Everyone with the link sees it, even before they join.'),
    ),
    h(
      'fieldset',
      null,
      h('legend', null, 'Joining'),
      checkbox('waiting-room', 'waitingRoom', 'Waiting room: I let each person in', true),
      checkbox('mute-on-entry', 'muteOnEntry', 'New members need permission to unmute', true),
    ),
    h(
      'fieldset',
      null,
      h('legend', null, 'Speaking'),
      checkbox('one-speaker', 'oneSpeaker', 'One speaker at a time: only the person with the floor (and facilitators) can be heard', false),
      h('div', { class: 'field' }, h('label', { for: 'share-secs' }, 'Share timer'), timer),
      otherSecs,
      timerExtras,
    ),
    h(
      'fieldset',
      null,
      h('legend', null, 'Chat and privacy'),
      checkbox('chat-enabled', 'chatEnabled', 'Chat is on', true),
      checkbox('roster-privacy', 'rosterPrivacy', 'Members see only the facilitators and a head count, not each other’s names', false),
    ),
    keyDetails,
    error,
    h('div', { class: 'actions' }, submit),
  );

  const main = h('main', { id: 'main', class: 'page page-narrow' }, brand(), form);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    const settings = {
      waiting_room: data.has('waitingRoom'),
      mute_on_entry: data.has('muteOnEntry'),
      one_speaker: data.has('oneSpeaker'),
      chat_enabled: data.has('chatEnabled'),
      roster_privacy: data.has('rosterPrivacy'),
    };
    const timerValue = data.get('shareSecs');
    if (timerValue) {
      const secs = timerValue === 'other' ? Number(data.get('shareOther')) : Number(timerValue);
      if (!Number.isInteger(secs) || secs < 5 || secs > 3600) {
        return showError('Please give a share length between 5 and 3600 seconds.');
      }
      const warn = Number(data.get('shareWarning'));
      if (!Number.isInteger(warn) || warn < 0 || warn > 600) {
        return showError('Please give a warning between 0 and 600 seconds.');
      }
      settings.share_secs = secs;
      settings.share_warning_secs = warn;
      settings.auto_end_share = data.has('autoEnd');
    }
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      const created = await createRoom({
        title: String(data.get('title') ?? '').trim(),
        settings,
        operatorKey: String(data.get('operatorKey') ?? '').trim(),
      });
      main.replaceChildren(brand(), createdCard(created));
      main.querySelector('h1').focus();
    } catch (e) {
      submit.disabled = false;
      submit.textContent = 'Create the meeting';
      if (e.code === 'unauthorized') {
        keyDetails.open = true;
        showError('This server only lets people with its server key create meetings. Enter the key and try again.');
      } else if (e.code === 'unreachable') {
        showError('Could not reach the meeting server. Check your connection and try again.');
      } else {
        showError(e.message || 'The meeting could not be created.');
      }
    }
  });

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
  }

  return { el: main, focus: () => main.querySelector('h1').focus() };
}

function createdCard(created) {
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'created-title' },
    h('h1', { id: 'created-title', tabindex: '-1' }, 'Your meeting is ready'),
    h('p', { class: 'lead' }, created.title),
    linkField('members-link', 'Link for members', created.join_url, 'Send this link to the group. People choose a name when they open it.'),
    linkField('facilitator-link', 'Your facilitator link', created.facilitator_url, null),
    h(
      'div',
      { class: 'alert alert-caution', role: 'note' },
      h('strong', null, 'Keep the facilitator link private. '),
      'Anyone who opens it can run this meeting: let people in, mute them, remove them or end it. Do not post it in the chat or send it to members. To share the work, make someone a co-facilitator from inside the meeting.',
    ),
    h(
      'div',
      { class: 'actions' },
      h('a', { class: 'btn btn-primary', href: created.facilitator_url }, 'Open the meeting as facilitator'),
      h('button', { type: 'button', class: 'btn', onclick: (ev) => restart(ev.target) }, 'Create another meeting'),
    ),
  );
}

function restart(button) {
  const fresh = startView();
  button.closest('main').replaceWith(fresh.el);
  fresh.focus();
}

function linkField(id, label, url, hint) {
  const input = h('input', { id, type: 'text', readonly: true, value: url, spellcheck: 'false' });
  const button = h('button', { type: 'button', class: 'btn btn-small', 'aria-describedby': id }, 'Copy');
  button.addEventListener('click', async () => {
    const ok = await copyText(url, input);
    button.textContent = ok ? 'Copied' : 'Select and copy';
    announce(ok ? `${label} copied.` : 'Could not copy. Select the link and copy it.');
    setTimeout(() => (button.textContent = 'Copy'), 2500);
  });
  input.addEventListener('focus', () => input.select());
  return h(
    'div',
    { class: 'field link-field' },
    h('label', { for: id }, label),
    h('div', { class: 'copy-row' }, input, button),
    hint && h('p', { class: 'hint' }, hint),
  );
}

function checkbox(id, name, label, checked) {
  return h(
    'div',
    { class: 'check' },
    h('input', { id, name, type: 'checkbox', checked }),
    h('label', { for: id }, label),
  );
}

export function brand() {
  return h('p', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Circle');
}
