// The start page: create a meeting, then hand out its two links.

import { createRoom } from '../api.js';
import { t, tn } from '../i18n.js';
import { announce, copyText, h, languagePicker } from './dom.js';

const timerChoices = () => [
  ['', t('timer.none')],
  ...[1, 2, 3, 5, 10].map((m) => [String(m * 60), tn('timer.minutes', m)]),
  ['other', t('start.timer_other')],
];

// The meeting made on a start page (its `main`), while its links are on show.
const made = new WeakMap();

/** The start page; `main` to draw it again in place (in another language, or to start anew). */
export function startView(main = h('main', { id: 'main', class: 'page page-narrow' })) {
  const error = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
  const keyDetails = h(
    'details',
    { class: 'server-key' },
    h('summary', null, t('start.server_key_summary')),
    h('label', { for: 'operator-key' }, t('start.server_key')),
    h('input', { id: 'operator-key', name: 'operatorKey', type: 'password', autocomplete: 'off' }),
  );
  const otherSecs = h(
    'div',
    { class: 'field', hidden: true },
    h('label', { for: 'share-other' }, t('start.share_other')),
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
    timerChoices().map(([v, label]) => h('option', { value: v }, label)),
  );
  const timerExtras = h(
    'div',
    { hidden: true },
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'share-warning' }, t('start.share_warning')),
      h('input', { id: 'share-warning', name: 'shareWarning', type: 'number', min: '0', max: '600', step: '1', value: '30', inputmode: 'numeric' }),
    ),
    checkbox('auto-end', 'autoEnd', t('settings.auto_end'), false),
  );
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('start.create'));
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'start-title' },
    h('h1', { id: 'start-title', tabindex: '-1' }, t('start.title')),
    h('p', { class: 'lead' }, t('start.lead')),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'title' }, t('start.name')),
      h('input', { id: 'title', name: 'title', type: 'text', maxlength: '80', placeholder: t('start.name_placeholder'), autocomplete: 'off' }),
      h('p', { class: 'hint' }, t('start.name_hint')),
    ),
    h(
      'fieldset',
      null,
      h('legend', null, t('start.joining')),
      checkbox('waiting-room', 'waitingRoom', t('start.waiting_room'), true),
      checkbox('mute-on-entry', 'muteOnEntry', t('settings.mute_on_entry'), true),
    ),
    h(
      'fieldset',
      null,
      h('legend', null, t('start.speaking')),
      checkbox('one-speaker', 'oneSpeaker', t('start.one_speaker'), false),
      h('div', { class: 'field' }, h('label', { for: 'share-secs' }, t('settings.share_timer')), timer),
      otherSecs,
      timerExtras,
    ),
    h(
      'fieldset',
      null,
      h('legend', null, t('start.chat_privacy')),
      checkbox('chat-enabled', 'chatEnabled', t('start.chat_on'), true),
      checkbox('roster-privacy', 'rosterPrivacy', t('start.roster_privacy'), false),
    ),
    keyDetails,
    error,
    h('div', { class: 'actions' }, submit),
  );

  main.replaceChildren(brand(), form);

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
        return showError(t('start.error_share'));
      }
      const warn = Number(data.get('shareWarning'));
      if (!Number.isInteger(warn) || warn < 0 || warn > 600) {
        return showError(t('start.error_warning'));
      }
      settings.share_secs = secs;
      settings.share_warning_secs = warn;
      settings.auto_end_share = data.has('autoEnd');
    }
    submit.disabled = true;
    submit.textContent = t('start.creating');
    try {
      const created = await createRoom({
        title: String(data.get('title') ?? '').trim(),
        settings,
        operatorKey: String(data.get('operatorKey') ?? '').trim(),
      });
      made.set(main, created);
      main.replaceChildren(brand(), createdCard(created, main));
      main.querySelector('h1').focus();
    } catch (e) {
      submit.disabled = false;
      submit.textContent = t('start.create');
      if (e.code === 'unauthorized') {
        keyDetails.open = true;
        showError(t('start.error_unauthorized'));
      } else if (e.code === 'unreachable') {
        showError(t('start.error_unreachable'));
      } else {
        showError(e.message || t('start.error_other'));
      }
    }
  });

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
  }

  return {
    el: main,
    focus: () => main.querySelector('h1').focus(),
    // In another language: the form anew (app.js puts back what was typed), or the links once made.
    relabel() {
      if (made.has(main)) main.replaceChildren(brand(), createdCard(made.get(main), main));
      else startView(main);
    },
  };
}

function createdCard(created, main) {
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'created-title' },
    h('h1', { id: 'created-title', tabindex: '-1' }, t('start.ready')),
    h('p', { class: 'lead' }, created.title),
    linkField('members-link', t('start.members_link'), created.join_url, t('start.members_link_hint')),
    linkField('facilitator-link', t('link.yours'), created.facilitator_url, null),
    h(
      'div',
      { class: 'alert alert-caution', role: 'note' },
      h('strong', null, t('start.private_strong')),
      ' ',
      t('start.private_body'),
    ),
    h(
      'div',
      { class: 'actions' },
      h('a', { class: 'btn btn-primary', href: created.facilitator_url }, t('start.open_as_facilitator')),
      h('button', { type: 'button', class: 'btn', onclick: () => restart(main) }, t('start.another')),
    ),
  );
}

function restart(main) {
  made.delete(main);
  startView(main).focus();
}

function linkField(id, label, url, hint) {
  const input = h('input', { id, type: 'text', readonly: true, value: url, spellcheck: 'false' });
  const button = h('button', { type: 'button', class: 'btn btn-small', 'aria-describedby': id }, t('copy.copy'));
  button.addEventListener('click', async () => {
    const ok = await copyText(url, input);
    button.textContent = ok ? t('copy.copied') : t('copy.select');
    announce(ok ? t('copy.done', { label }) : t('copy.failed'));
    setTimeout(() => (button.textContent = t('copy.copy')), 2500);
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

/** The name at the top of the page, with the language picker beside it. */
export function brand() {
  return h(
    'div',
    { class: 'brand-row' },
    h('p', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Circle'),
    languagePicker(),
  );
}
