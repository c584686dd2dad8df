// The room on a phone: its panels (Speaking, People, Chat, and Running the meeting for facilitators)
// take turns behind a row of tabs, one panel at a time, instead of one very long column. A badge on a
// tab says what happened there while it was out of sight: new chat messages, people waiting to be let
// in. On a wider screen (NARROW does not match) there are no tabs and every panel shows, as before.
//
// The tabs follow the WAI-ARIA tabs pattern: a tablist of tab buttons, one tabpanel each, the chosen
// tab `aria-selected` and the only one in the Tab order; the arrow keys move between tabs and choose
// them, Home and End go to the first and the last. A switch only shows and hides panels, never redraws
// them, so a chat draft or a volume slider stays as it was.

import { t } from '../i18n.js';
import { h } from './dom.js';

// What each tab has not yet shown, and how far down each panel was read, by `storageKey`: the room is
// drawn anew on a change of language, and the badges and the places stay. In this page's memory only
// (message ids are the meeting's, not for storage).
const kept = new Map();

/** Where the room turns into tabs: its one-column layout. The same width as style.css's "phone tabs". */
export const NARROW = '(max-width: 719px)';

/**
 * @param {object} o
 * @param {{id: string, panel: HTMLElement, label: string, badge?: (count: number) => string, onShow?: () => void}[]} o.tabs
 *   in order; `badge(count)` is what a screen reader hears of the tab's badge ("2 new messages").
 * @param {string} [o.storageKey] keeps the chosen tab for a reload or a redraw of the room (this tab only).
 * @param {() => void} [o.onLayout] called when the screen turns narrow or wide (the room draws anew).
 */
export function phoneTabs({ tabs, storageKey, onLayout }) {
  const query = window.matchMedia(NARROW);
  const byId = new Map();
  const memory = kept.get(storageKey) ?? { unseen: new Map(), scroll: new Map() };
  if (storageKey) kept.set(storageKey, memory);
  for (const spec of tabs) {
    spec.panel.id ||= `panel-${spec.id}`;
    const count = h('span', { class: 'room-tab-badge', 'aria-hidden': 'true', hidden: true });
    const said = h('span', { class: 'visually-hidden' });
    const button = h(
      'button',
      {
        type: 'button',
        role: 'tab',
        id: `tab-${spec.id}`,
        class: 'room-tab',
        'aria-controls': spec.panel.id,
        'aria-selected': 'false',
        tabindex: '-1',
        onclick: () => select(spec.id),
      },
      // What a screen reader hears is one piece of text ("Chat, 2 new messages"): pieces side by
      // side in a flex box would be read with a space between ("Chat , 2 …").
      h('span', { class: 'room-tab-label', 'aria-hidden': 'true' }, spec.label),
      count,
      said,
    );
    byId.set(spec.id, {
      ...spec,
      button,
      count,
      said,
      available: true,
      unseen: memory.unseen.get(spec.id) ?? new Set(), // what arrived while the panel was out of sight (chat message ids)
      waiting: 0, // a standing count, shown while the panel is out of sight (people waiting)
      scroll: memory.scroll.get(spec.id) ?? 0, // how far down its panel was read, for coming back to it
      labelledBy: spec.panel.getAttribute('aria-labelledby'),
    });
    memory.unseen.set(spec.id, byId.get(spec.id).unseen);
  }
  const el = h(
    'div',
    { class: 'room-tabs', role: 'tablist', 'aria-label': t('tabs.label'), onkeydown: onKey },
    [...byId.values()].map((tab) => tab.button),
  );

  // The panels' box, which on a phone scrolls on its own between the tabs and the controls bar; it
  // says which tab shows (`data-tab`: style.css lets the chat fill it).
  const box = tabs[0].panel.parentElement;
  let narrow = query.matches;
  let selected = tabs[0].id;
  try {
    const saved = storageKey && sessionStorage.getItem(storageKey);
    if (saved && byId.has(saved)) selected = saved;
  } catch {
    // Storage turned off: the first tab.
  }

  /** Whether a tab's panel is on screen now. */
  const shown = (id) => !narrow || id === selected;

  /** Draws the tabs, the panels' roles and what is hidden from the model above. */
  function apply() {
    if (!byId.get(selected)?.available) selected = first();
    if (narrow) box.dataset.tab = selected;
    else delete box.dataset.tab;
    for (const tab of byId.values()) {
      const on = tab.id === selected;
      tab.button.hidden = !tab.available;
      tab.button.setAttribute('aria-selected', on ? 'true' : 'false');
      tab.button.tabIndex = on ? 0 : -1;
      if (shown(tab.id)) tab.unseen.clear();
      const n = shown(tab.id) ? 0 : tab.unseen.size || tab.waiting;
      tab.count.hidden = n === 0;
      tab.count.textContent = n ? String(n) : '';
      tab.said.textContent = n && tab.badge ? t('tabs.with_badge', { tab: tab.label, badge: tab.badge(n) }) : tab.label;
      const panel = tab.panel;
      panel.classList.toggle('is-tab-hidden', narrow && !on);
      if (narrow) {
        panel.setAttribute('role', 'tabpanel');
        panel.setAttribute('aria-labelledby', tab.button.id);
        // A Tab stop of its own, as the pattern asks: a panel with nothing to press (a member's
        // Speaking, a long queue) can still be reached and scrolled with the keyboard.
        panel.tabIndex = 0;
      } else {
        panel.removeAttribute('tabindex');
        panel.removeAttribute('role');
        if (tab.labelledBy) panel.setAttribute('aria-labelledby', tab.labelledBy);
      }
    }
  }

  function first() {
    return [...byId.values()].find((tab) => tab.available)?.id ?? tabs[0].id;
  }

  /** Shows the panel of tab `id`; `focus` moves the keyboard focus to its tab (arrow keys). */
  function select(id, { focus = false } = {}) {
    const tab = byId.get(id);
    if (!tab?.available) return;
    const changed = id !== selected;
    // Each panel comes back scrolled where it was left (a new one from its top), never somewhere in
    // its middle because another panel was scrolled that far.
    if (changed && narrow) remember();
    selected = id;
    try {
      if (storageKey) sessionStorage.setItem(storageKey, id);
    } catch {
      // Storage turned off: the choice lasts for this page.
    }
    apply();
    if (focus) tab.button.focus();
    if (changed && narrow) {
      box.scrollTop = tab.scroll;
      tab.onShow?.();
    }
  }

  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const order = [...byId.values()].filter((tab) => tab.available).map((tab) => tab.id);
    const at = order.indexOf(ev.target.closest('[role="tab"]')?.id.slice('tab-'.length));
    if (at < 0) return;
    // In a right-to-left language the first tab is on the right: the arrows follow what is seen.
    const rtl = getComputedStyle(el).direction === 'rtl';
    let next = null;
    if (ev.key === 'ArrowRight') next = at + (rtl ? -1 : 1);
    else if (ev.key === 'ArrowLeft') next = at + (rtl ? 1 : -1);
    else if (ev.key === 'Home') next = 0;
    else if (ev.key === 'End') next = order.length - 1;
    if (next === null) return;
    ev.preventDefault();
    select(order[(next + order.length) % order.length], { focus: true });
  }

  // Turning narrow (a phone turned, a window made small): the panel with the keyboard focus in it is
  // the one shown, so focus never ends up inside a hidden panel.
  const onChange = () => {
    narrow = query.matches;
    if (narrow) {
      const holder = [...byId.values()].find((tab) => tab.available && tab.panel.contains(document.activeElement));
      if (holder) selected = holder.id;
    }
    apply();
    onLayout?.();
  };
  query.addEventListener('change', onChange);
  apply();
  // Drawn anew (a change of language): back where the panel was read, once the room is on the page.
  if (narrow && byId.get(selected).scroll) requestAnimationFrame(() => (box.scrollTop = byId.get(selected).scroll));

  /** Notes how far down the panel on show was read. */
  function remember() {
    const tab = byId.get(selected);
    tab.scroll = box.scrollTop;
    memory.scroll.set(tab.id, tab.scroll);
  }

  return {
    el,
    /** Whether the room shows as tabs now. */
    get narrow() {
      return narrow;
    },
    select,
    /** Shows the panel that holds `node` (before focusing something in it). */
    reveal(node) {
      const tab = [...byId.values()].find((x) => node && x.panel.contains(node));
      if (tab && narrow) select(tab.id);
    },
    /** Whether tab `id` is there at all (the facilitators' tab). */
    setAvailable(id, available) {
      const tab = byId.get(id);
      if (tab.available === available) return;
      const hadFocus = tab.button === document.activeElement || tab.panel.contains(document.activeElement);
      tab.available = available;
      apply();
      if (!available && hadFocus && narrow) byId.get(selected).button.focus();
    },
    /** Things that came to tab `id` (`added`) and went again before being seen (`removed`). */
    unseen(id, added, removed = []) {
      const tab = byId.get(id);
      if (!shown(id)) for (const key of added) tab.unseen.add(key);
      for (const key of removed) tab.unseen.delete(key);
      apply();
    },
    /** A standing count for tab `id`'s badge, shown while its panel is out of sight. */
    setWaiting(id, count) {
      const tab = byId.get(id);
      if (tab.waiting === count) return;
      tab.waiting = count;
      apply();
    },
    destroy() {
      if (narrow) remember();
      query.removeEventListener('change', onChange);
    },
  };
}
