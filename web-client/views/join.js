// The join page: the meeting's title, a pseudonym, an optional microphone check, and join (muted).

import { roomInfo } from '../api.js';
import { t } from '../i18n.js';
import { brand } from './start.js';
import { formatWhen, h } from './dom.js';
import { joinErrorText } from './messages.js';

// The server's limit on a pseudonym, in characters (PROTOCOL.md `join`).
const MAX_NAME_CHARS = 32;

/**
 * @param {object} o
 * @param {string} o.room the room id from the link
 * @param {boolean} o.facilitator the link carries a facilitator key
 * @param {import('../media.js').Media} o.media
 * @param {(name: string) => Promise<void>} o.onJoin joins; rejects with a SessionError
 * @param {string} [o.notice] a message to show first (e.g. why a resume did not work)
 * @param {string} [o.name] the name to fill in (the one last used here)
 */
export function joinView({ room, facilitator, media, onJoin, notice, name: lastName = '' }) {
  const heading = h('h1', { id: 'join-title', tabindex: '-1' }, 'Opening the meeting…');
  const card = h('section', { class: 'card', 'aria-labelledby': 'join-title' }, heading);
  const main = h('main', { id: 'main', class: 'page page-narrow' }, brand(), card);
  let destroyed = false;
  const cleanups = [];

  load();

  async function load() {
    let info;
    try {
      info = await roomInfo(room);
    } catch {
      if (destroyed) return;
      heading.textContent = 'Could not reach the meeting server';
      card.append(
        h('p', null, 'Check your internet connection, then try again.'),
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: () => location.reload() }, 'Try again')),
      );
      return;
    }
    if (destroyed) return;
    if (!info) {
      heading.textContent = 'This meeting does not exist or has ended';
      card.append(h('p', null, 'Check the link with the person who sent it to you. A meeting’s link stops working when the meeting ends, or when its organiser replaces it.'));
      return;
    }
    heading.textContent = info.title;
    heading.before(h('p', { class: 'eyebrow' }, 'You are invited to'));
    card.append(...opening(info), ...closed(info), ...joinForm());
  }

  /**
   * A locked or full meeting, said before a name is typed (a facilitator's link gets in anyway). The
   * form stays: the room may open again, and joining still gives the answer that counts.
   */
  function closed(info) {
    if (facilitator || !(info.locked || info.full)) return [];
    const text = t(info.locked ? 'presence.lockedNotice' : 'presence.fullNotice');
    return [h('p', { class: 'calm-notice', id: 'join-closed', role: 'status' }, text)];
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
        h('strong', null, `The meeting opens ${when}.`),
        ' You can join now and wait; you will be let in then.',
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
      nameLimit.textContent = `${n} characters: a name can have at most ${MAX_NAME_CHARS}.`;
      name.setAttribute('aria-describedby', n > MAX_NAME_CHARS ? 'name-hint name-limit' : 'name-hint');
      name.toggleAttribute('aria-invalid', n > MAX_NAME_CHARS);
    });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Join muted');
    const form = h(
      'form',
      { novalidate: true, class: 'join-form' },
      h(
        'div',
        { class: 'field' },
        h('label', { for: 'name' }, 'Your name in this meeting'),
        name,
        h('p', { class: 'hint', id: 'name-hint' }, 'A first name or a pseudonym. Everyone in the meeting sees it; no account is needed.'),
        nameLimit,
      ),
      micCheck(),
      error,
      h('div', { class: 'actions' }, submit),
      h('p', { class: 'hint' }, 'You join with your microphone off. Nothing is recorded.'),
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
      submit.textContent = 'Joining…';
      try {
        await onJoin(chosen);
      } catch (e) {
        if (destroyed) return;
        submit.disabled = false;
        submit.textContent = 'Join muted';
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
      parts.push(h('p', { class: 'badge-line' }, h('span', { class: 'badge badge-role' }, 'Facilitator link'), ' You will join as a facilitator.'));
    }
    if (notice) parts.push(h('div', { class: 'alert alert-caution', role: 'status' }, notice));
    parts.push(form);
    return parts;
  }

  function micCheck() {
    const status = h('p', { class: 'hint', id: 'mic-status', role: 'status' }, 'Optional: check that others will hear you. It stays on this device.');
    const bar = h('div', { class: 'meter-bar' });
    const meter = h(
      'div',
      { class: 'meter', role: 'meter', 'aria-label': 'Microphone level', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0', hidden: true },
      bar,
    );
    const button = h('button', { type: 'button', class: 'btn', 'aria-describedby': 'mic-status' }, 'Check my microphone');
    let heard = false;
    const onLevel = (ev) => {
      const pct = Math.round(ev.detail * 100);
      bar.style.width = `${pct}%`;
      meter.setAttribute('aria-valuenow', String(pct));
      if (!heard && ev.detail > 0.06) {
        heard = true;
        status.textContent = 'We can hear you. The bar moves when you speak.';
      }
    };
    cleanups.push(() => media.removeEventListener('level', onLevel));
    button.addEventListener('click', async () => {
      if (media.isOpen) {
        stop();
        return;
      }
      button.disabled = true;
      status.textContent = 'Asking your browser for the microphone…';
      const ok = await media.open();
      button.disabled = false;
      if (destroyed) return;
      if (ok) {
        heard = false;
        media.addEventListener('level', onLevel);
        meter.hidden = false;
        button.textContent = 'Stop the check';
        status.textContent = 'Say something: the bar should move.';
      } else {
        status.textContent = '';
        status.append(
          h('strong', null, media.permission === 'denied' ? 'Your browser did not allow the microphone. ' : 'No microphone was found. '),
          'You can still join to listen and chat. To speak later, allow the microphone for this site in your browser’s settings.',
        );
        status.classList.add('caution-text');
      }
    });
    function stop() {
      media.removeEventListener('level', onLevel);
      media.close();
      meter.hidden = true;
      bar.style.width = '0%';
      button.textContent = 'Check my microphone';
      status.textContent = 'Microphone check stopped.';
    }
    return h('fieldset', { class: 'mic-check' }, h('legend', null, 'Microphone'), h('div', { class: 'mic-row' }, button, meter), status);
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
