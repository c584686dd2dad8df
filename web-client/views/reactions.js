// Silent reactions: "thank you", "me too", a heart, applause, sent without interrupting anyone and
// shown for a few seconds next to the sender's name in the people list.
//
// The server passes a `reaction` to everyone who sees the sender (never the waiting room) and keeps
// nothing: this page shows it and forgets it. Screen readers hear them through the polite announcer,
// gathered over a short window into one line, so a wave of hearts after a share is one sentence, not
// ten. The bar is there only while the room's `reactions` setting is on.

import { t, tn } from '../i18n.js';
import { announce, h } from './dom.js';

/** The reactions the protocol knows, in the bar's order. */
export const REACTIONS = Object.freeze(['thanks', 'me_too', 'heart', 'clap']);
// Drawn beside the words, never instead of them, and hidden from screen readers, which read the
// words. Line drawings like the page's other icons (an emoji font is not on every device).
const SYMBOL = {
  thanks: ['M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z', 'M8 14a5 5 0 0 0 8 0', 'M9 9.5h.01', 'M15 9.5h.01'],
  me_too: ['M9 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6z', 'M3 20a6 6 0 0 1 12 0', 'M16 11a2.5 2.5 0 1 0 0-5', 'M17 14.5a5 5 0 0 1 4 5.5'],
  heart: ['M12 20s-7.5-4.6-7.5-10.2A4.2 4.2 0 0 1 12 7.3a4.2 4.2 0 0 1 7.5 2.5C19.5 15.4 12 20 12 20z'],
  clap: ['M12 3v3.5', 'M12 17.5V21', 'M3 12h3.5', 'M17.5 12H21', 'M5.6 5.6l2.5 2.5', 'M15.9 15.9l2.5 2.5', 'M5.6 18.4l2.5-2.5', 'M15.9 8.1l2.5-2.5'],
};

function symbol(reaction) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', `icon reaction-symbol reaction-${reaction}`);
  for (const d of SYMBOL[reaction]) {
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}
/** How long a reaction stays next to a name. */
export const REACTION_SHOW_MS = 6000;
/** Reactions that arrive within this window are announced together. */
const ANNOUNCE_GATHER_MS = 2500;
/** How many names one announcement lists before it says "and N more". */
const ANNOUNCE_NAMES = 3;

export class Reactions {
  /**
   * @param {{ session: EventTarget & { request: Function }, state: object, onChange: () => void,
   *   onError: (text: string) => void }} o  `onChange` redraws the people list; `onError` shows a
   *   refusal kindly.
   */
  constructor({ session, state, onChange, onError }) {
    this.session = session;
    this.state = state;
    this.onChange = onChange;
    this.onError = onError;
    /** Reactions on show, by participant id: { reaction, timer }. */
    this.shown = new Map();
    /** Reactions from others waiting to be announced: [{ name, reaction }]. */
    this.heard = [];
    this.announceTimer = 0;
    this.onMessage = (ev) => {
      const msg = ev.detail;
      if (msg.type === 'reaction') this.show(msg.participant, msg.reaction);
      else if (msg.type === 'settings' && !msg.settings.reactions) this.clear();
    };
    session.addEventListener('message', this.onMessage);
  }

  get enabled() {
    return this.state.settings.reactions !== false;
  }

  show(id, reaction) {
    if (!REACTIONS.includes(reaction)) return;
    clearTimeout(this.shown.get(id)?.timer);
    const timer = setTimeout(() => {
      this.shown.delete(id);
      this.onChange();
    }, REACTION_SHOW_MS);
    this.shown.set(id, { reaction, timer });
    this.onChange();
    const name = this.state.nameOf(id);
    if (id !== this.state.you && name) {
      this.heard.push({ name, reaction });
      this.announceTimer ||= setTimeout(() => this.announceHeard(), ANNOUNCE_GATHER_MS);
    }
  }

  announceHeard() {
    this.announceTimer = 0;
    const heard = this.heard;
    this.heard = [];
    if (!heard.length) return;
    if (heard.length === 1) {
      announce(t('reactions.said', { name: heard[0].name, reaction: label(heard[0].reaction) }));
      return;
    }
    const listed = heard.slice(-ANNOUNCE_NAMES).map((r) => t('reactions.said', { name: r.name, reaction: label(r.reaction) }));
    const more = heard.length - listed.length;
    announce(more > 0 ? tn('reactions.said_more', more, { list: listed.join('; ') }) : listed.join('; '));
  }

  clear() {
    for (const { timer } of this.shown.values()) clearTimeout(timer);
    this.shown.clear();
    this.heard = [];
    this.onChange();
  }

  async send(reaction) {
    try {
      await this.session.request('react', { reaction });
    } catch (e) {
      if (e.code === 'rate_limited') this.onError(t('reactions.slow_down'));
      else if (e.code === 'reactions_disabled') this.onError(t('reactions.off'));
      else this.onError(t('reactions.failed'));
    }
  }

  /** The reaction on show next to this person's name, as a badge, or null. */
  badge(id) {
    const r = this.shown.get(id)?.reaction;
    if (!r || !this.enabled) return null;
    return h(
      'span',
      { class: 'badge badge-reaction', 'data-reaction': r },
      symbol(r),
      label(r),
    );
  }

  /** The bar of reaction buttons, or null while reactions are off. `disabled` while offline. */
  bar({ disabled = false } = {}) {
    if (!this.enabled) return null;
    return h(
      'div',
      { class: 'reaction-bar', role: 'group', 'aria-label': t('reactions.bar') },
      REACTIONS.map((r) =>
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small btn-reaction',
            key: `react-${r}`,
            'data-reaction': r,
            title: t('reactions.hint'),
            disabled,
            onclick: () => this.send(r),
          },
          symbol(r),
          h('span', { class: 'reaction-label' }, label(r)),
        ),
      ),
    );
  }

  destroy() {
    this.session.removeEventListener('message', this.onMessage);
    clearTimeout(this.announceTimer);
    for (const { timer } of this.shown.values()) clearTimeout(timer);
    this.shown.clear();
  }
}

function label(reaction) {
  return t(`reactions.${reaction}`);
}
