// The join page: the meeting's title, a pseudonym, an optional microphone check, and join (muted).

import { roomInfo } from '../api.js';
import { t } from '../i18n.js';
import { brand } from './start.js';
import { formatWhen, h } from './dom.js';
import { joinErrorText } from './messages.js';

// The server's limit on a pseudonym, in characters (PROTOCOL.md `join`).
const MAX_NAME_CHARS = 32;

// The meeting last shown here, `{ room, info }`: drawn again in another language, the page shows it
// at once rather than asking the server again.
let shown = null;

/**
 * @param {object} o
 * @param {string} o.room the room id from the link
 * @param {boolean} o.facilitator the link carries a facilitator key
 * @param {import('../media.js').Media} o.media
 * @param {(name: string) => Promise<void>} o.onJoin joins; rejects with a SessionError
 * @param {string} [o.notice] a message to show first (e.g. why a resume did not work)
 * @param {string} [o.name] the name to fill in (the one last used here)
 * @param {boolean} [o.again] the same page drawn again (in another language)
 */
export function joinView({ room, facilitator, media, onJoin, notice, name: lastName = '', again = false }) {
  const heading = h('h1', { id: 'join-title', tabindex: '-1' }, t('join.opening'));
  const card = h('section', { class: 'card', 'aria-labelledby': 'join-title' }, heading);
  const main = h('main', { id: 'main', class: 'page page-narrow' }, brand(), card);
  let destroyed = false;
  const cleanups = [];

  load();

  async function load() {
    let info;
    try {
      info = again && shown?.room === room ? shown.info : await roomInfo(room);
      shown = { room, info };
    } catch {
      if (destroyed) return;
      heading.textContent = t('join.unreachable');
      card.append(
        h('p', null, t('join.unreachable_body')),
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: () => location.reload() }, t('join.try_again'))),
      );
      return;
    }
    if (destroyed) return;
    if (!info) {
      heading.textContent = t('join.not_found');
      card.append(h('p', null, t('join.not_found_body')));
      return;
    }
    heading.textContent = info.title;
    heading.before(h('p', { class: 'eyebrow' }, t('join.invited')));
    card.append(...opening(info), ...joinForm());
  }

  /** A standing room that is not open yet: when it opens, in this person's own time. */
  function opening(info) {
    // `opens_at` null: open now (a facilitator may have opened it early).
    const opensAt = 'opens_at' in info ? info.opens_at : (info.next_meeting?.opens_at ?? null);
    if (!info.standing || typeof opensAt !== 'number' || opensAt <= Date.now()) return [];
    const when = formatWhen(opensAt);
    return [
      h(
        'p',
        { class: 'opens-at', id: 'opens-at' },
        h('strong', null, t('join.opens', { when })),
        ' ',
        t('join.opens_wait'),
      ),
    ];
  }

  function joinForm() {
    const error = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
    const name = h('input', {
      id: 'name',
      name: 'name',
      type: 'text',
      // No maxlength: a longer name (pasted, say) would be cut without a word. It is checked below
      // and on joining, and the page says why.
      required: true,
      autocomplete: 'nickname',
      autocapitalize: 'words',
      spellcheck: 'false',
      'aria-describedby': 'name-hint',
    });
    name.value = lastName;
    const nameLimit = h('p', { class: 'hint caution-text', id: 'name-limit', hidden: true });
    name.addEventListener('input', () => {
      const n = [...name.value.trim()].length;
      nameLimit.hidden = n <= MAX_NAME_CHARS;
      nameLimit.textContent = t('join.name_limit', { count: n, max: MAX_NAME_CHARS });
      name.setAttribute('aria-describedby', n > MAX_NAME_CHARS ? 'name-hint name-limit' : 'name-hint');
      name.toggleAttribute('aria-invalid', n > MAX_NAME_CHARS);
    });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('join.submit'));
    const form = h(
      'form',
      { novalidate: true, class: 'join-form' },
      h(
        'div',
        { class: 'field' },
        h('label', { for: 'name' }, t('join.name')),
        name,
        h('p', { class: 'hint', id: 'name-hint' }, t('join.name_hint')),
        nameLimit,
      ),
      micCheck(),
      error,
      h('div', { class: 'actions' }, submit),
      h('p', { class: 'hint' }, t('join.muted_hint')),
    );
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      const chosen = name.value.trim();
      if (!chosen || [...chosen].length > MAX_NAME_CHARS) {
        showError(joinErrorText('invalid_name'));
        name.focus();
        return;
      }
      submit.disabled = true;
      submit.textContent = t('join.joining');
      try {
        await onJoin(chosen);
      } catch (e) {
        if (destroyed) return;
        submit.disabled = false;
        submit.textContent = t('join.submit');
        showError(joinErrorText(e.code, e.message));
        if (e.code === 'name_taken' || e.code === 'invalid_name') name.focus();
      }
    });
    function showError(text) {
      error.textContent = text;
      error.hidden = false;
    }
    const parts = [];
    if (facilitator) {
      parts.push(h('p', { class: 'badge-line' }, h('span', { class: 'badge badge-role' }, t('join.facilitator_link')), ' ', t('join.as_facilitator')));
    }
    if (notice) parts.push(h('div', { class: 'alert alert-caution', role: 'status' }, notice));
    parts.push(form);
    return parts;
  }

  function micCheck() {
    const status = h('p', { class: 'hint', id: 'mic-status', role: 'status' }, t('mic.optional'));
    const bar = h('div', { class: 'meter-bar' });
    const meter = h(
      'div',
      { class: 'meter', role: 'meter', 'aria-label': t('mic.level'), 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0', hidden: true },
      bar,
    );
    const button = h('button', { type: 'button', class: 'btn', 'aria-describedby': 'mic-status' }, t('mic.check'));
    let heard = false;
    const onLevel = (ev) => {
      const pct = Math.round(ev.detail * 100);
      bar.style.width = `${pct}%`;
      meter.setAttribute('aria-valuenow', String(pct));
      if (!heard && ev.detail > 0.06) {
        heard = true;
        status.textContent = t('mic.heard');
      }
    };
    cleanups.push(() => media.removeEventListener('level', onLevel));
    button.addEventListener('click', async () => {
      if (media.isOpen) {
        stop();
        return;
      }
      button.disabled = true;
      status.textContent = t('mic.asking');
      const ok = await media.open();
      button.disabled = false;
      if (destroyed) return;
      if (ok) {
        heard = false;
        media.addEventListener('level', onLevel);
        meter.hidden = false;
        button.textContent = t('mic.stop');
        status.textContent = t('mic.say');
      } else {
        status.textContent = '';
        status.append(
          h('strong', null, media.permission === 'denied' ? t('mic.denied') : t('mic.none')),
          ' ',
          t('mic.still_join'),
        );
        status.classList.add('caution-text');
      }
    });
    function stop() {
      media.removeEventListener('level', onLevel);
      media.close();
      meter.hidden = true;
      bar.style.width = '0%';
      button.textContent = t('mic.check');
      status.textContent = t('mic.stopped');
    }
    return h('fieldset', { class: 'mic-check' }, h('legend', null, t('mic.legend')), h('div', { class: 'mic-row' }, button, meter), status);
  }

  return {
    el: main,
    focus: () => heading.focus(),
    destroy() {
      destroyed = true;
      for (const undo of cleanups) undo();
      // The check's microphone closes when you leave this page: in the room it opens on unmute.
      media.close();
    },
  };
}
