// The room as this participant sees it, built from the server's messages.
//
// `apply(msg)` folds one server message into the model and says what changed (so the view redraws
// only those parts) and what a screen reader should hear. No DOM, no network: a plain module.

import { t, tn } from './i18n.js';

/** The parts of the view a change touches. */
export const Part = Object.freeze({
  ALL: 'all', // a new snapshot: redraw everything
  VIEW: 'view', // waiting room <-> room
  PEOPLE: 'people',
  FLOOR: 'floor',
  CHAT: 'chat',
  SETTINGS: 'settings',
  COUNTS: 'counts',
  ME: 'me',
  /** Only who is speaking (several times a second while people talk): painted in place. */
  SPEAKING: 'speaking',
});

// Room chat kept in the page: the server's history plus what arrives live, bounded.
const MAX_CHAT = 500;

export class RoomState {
  /** @param {{ sanctioned?: string[] }} [o] facilitator mutes this tab saw before a reload */
  constructor({ sanctioned = [] } = {}) {
    this.you = null;
    this.role = 'member';
    this.waiting = false;
    this.title = '';
    this.settings = {};
    /** @type {Map<string, object>} participant views by id, in join order */
    this.participants = new Map();
    this.counts = null;
    this.floor = { speaker: null, queue: [] };
    this.chat = [];
    this.mayBeHeard = false;
    /** Who is speaking now, from the voice relay's `speakers` events. */
    this.speaking = new Set();
    /** The share timer's warning and expiry for the current share. */
    this.share = { warned: false, expired: false };
    /** Server clock minus this page's clock, in ms, estimated from fresh event timestamps. */
    this.clockOffset = 0;
    /**
     * Ids of participants a facilitator muted (a sanction), as opposed to the room's rule on arrival
     * ("new members need permission to unmute"). The protocol does not tell the two apart: a mute
     * that turns on while this page watches (a facilitator's `mute`, "mute all") is a facilitator's;
     * one already set when this page first saw the person is the rule. The app keeps this set for
     * the tab (`sanctioned` in the constructor), so a reload remembers what it saw.
     */
    this.sanctioned = new Set(sanctioned);
    /** A standing room (its links are the group's every week; facilitators may replace them). */
    this.standing = false;
    /** While the room is not open yet: when it opens (server clock, Unix ms); else null. */
    this.opensAt = null;
    /** Whether a facilitator is in the meeting (online or reconnecting); told to the waiting room too. */
    this.facilitatorPresent = true;
    /** The links a facilitator was last sent (`links`, after one was replaced), or null. */
    this.links = null;
    /**
     * Facilitators only: participants whose voice connection is not good, by id ('fair' | 'poor'),
     * from the snapshot and `connection_quality` events. Members are never told.
     */
    this.connection = new Map();
    /** Chat messages added and deleted by the last `apply`, for incremental drawing. */
    this.chatAdded = [];
    this.chatDeleted = [];
  }

  get me() {
    return this.participants.get(this.you);
  }

  /** Whether `p` is muted only by the room's rule on arrival, waiting for a turn to speak. */
  mutedOnEntry(p) {
    return !!p?.muted_by_facilitator && !this.sanctioned.has(p.id);
  }

  /** Keeps `sanctioned` true to `p`, the new view of a participant (`before` the last one, if any). */
  noteMute(before, p) {
    if (!p.muted_by_facilitator) this.sanctioned.delete(p.id);
    else if (before && !before.muted_by_facilitator) this.sanctioned.add(p.id);
  }

  get isFacilitator() {
    return this.role === 'facilitator';
  }

  /** The server's clock now, as well as this page can tell. */
  serverNow() {
    return Date.now() + this.clockOffset;
  }

  nameOf(id) {
    return this.participants.get(id)?.name ?? null;
  }

  /** Folds one server message in. Returns `{ changed: Set<Part>, announce: string[] }`. */
  apply(msg) {
    const changed = new Set();
    const announce = [];
    this.chatAdded = [];
    this.chatDeleted = [];
    const say = (text) => announce.push(text);
    switch (msg.type) {
      case 'joined': {
        // Back in a new meeting after a server restart: everyone has a new id. A facilitator's mute
        // this page saw is known again by name (names are unique in a room).
        const renamed = this.you !== null && msg.you !== this.you;
        const sanctionedNames = renamed ? [...this.sanctioned].map((id) => this.nameOf(id)).filter(Boolean) : null;
        if (renamed) this.sanctioned.clear();
        this.you = msg.you;
        this.role = msg.role;
        this.waiting = msg.waiting;
        this.clockOffset = msg.server_time != null ? msg.server_time - Date.now() : this.clockOffset;
        this.load(msg.room, msg, { sameMeeting: !renamed });
        if (sanctionedNames) {
          for (const p of this.participants.values()) {
            if (p.muted_by_facilitator && sanctionedNames.includes(p.name)) this.sanctioned.add(p.id);
          }
        }
        changed.add(Part.ALL).add(Part.VIEW);
        break;
      }
      case 'links':
        this.links = { join: msg.join_url ?? null, facilitator: msg.facilitator_url ?? null };
        changed.add(Part.SETTINGS);
        break;
      case 'admitted':
        this.waiting = false;
        this.load(msg.room);
        changed.add(Part.ALL).add(Part.VIEW);
        say(
          this.mutedOnEntry(this.me)
            ? t('say.admitted_wait_turn')
            : t('say.admitted_muted'),
        );
        break;
      case 'room_state': {
        const before = this.role;
        this.load(msg.room);
        this.role = this.me?.role ?? this.role;
        if (before !== this.role) {
          say(this.isFacilitator ? t('say.now_cofacilitator') : t('say.now_member'));
        }
        changed.add(Part.ALL);
        break;
      }
      // A large snapshot arrives in pieces right after it: the rest of the roster, then of the chat.
      case 'more_participants':
        for (const p of msg.participants) {
          this.noteMute(this.participants.get(p.id), p);
          this.participants.set(p.id, p);
        }
        changed.add(Part.PEOPLE);
        break;
      case 'more_chat': {
        const known = new Set(this.chat.map((m) => m.id));
        this.chat = [...this.chat, ...msg.chat.filter((m) => !known.has(m.id))]
          .sort((a, b) => a.id - b.id)
          .slice(-MAX_CHAT);
        changed.add(Part.ALL);
        break;
      }
      case 'participant_joined': {
        const p = msg.participant;
        this.noteMute(this.participants.get(p.id), p);
        this.participants.set(p.id, p);
        if (p.presence === 'waiting' && this.isFacilitator) say(t('say.in_waiting_room', { name: p.name }));
        changed.add(Part.PEOPLE);
        break;
      }
      case 'participant_updated': {
        const p = msg.participant;
        const before = this.participants.get(p.id);
        this.noteMute(before, p);
        this.participants.set(p.id, p);
        if (p.id === this.you) {
          this.role = p.role;
          if (before && !before.muted_by_facilitator && p.muted_by_facilitator) {
            say(t('say.muted_you'));
          } else if (before?.muted_by_facilitator && !p.muted_by_facilitator) {
            say(t('say.may_speak'));
          }
          if (before && before.chat_allowed && !p.chat_allowed) say(t('say.chat_paused'));
          if (before && !before.chat_allowed && p.chat_allowed) say(t('say.chat_again'));
          changed.add(Part.ME);
        }
        changed.add(Part.PEOPLE);
        // Hands live in the queue too; a name may show in the floor.
        changed.add(Part.FLOOR);
        break;
      }
      case 'connection_quality':
        if (msg.level === 'good') this.connection.delete(msg.participant);
        else this.connection.set(msg.participant, msg.level);
        changed.add(Part.PEOPLE);
        break;
      case 'participant_left':
        this.participants.delete(msg.participant);
        this.sanctioned.delete(msg.participant);
        this.connection.delete(msg.participant);
        changed.add(Part.PEOPLE);
        break;
      case 'counts':
        this.counts = msg.counts;
        changed.add(Part.COUNTS);
        break;
      case 'floor': {
        const before = this.floor.speaker;
        const after = msg.floor.speaker;
        this.floor = msg.floor;
        if (before?.participant !== after?.participant || before?.since !== after?.since) {
          this.share = { warned: false, expired: false };
          if (after) this.clockOffset = after.since - Date.now();
        }
        if (before?.participant !== after?.participant) {
          if (!after) say(t('say.no_floor'));
          else if (after.participant === this.you) say(t('say.your_floor'));
          else say(t('say.has_floor', { name: after.name }));
        }
        changed.add(Part.FLOOR).add(Part.PEOPLE);
        break;
      }
      case 'share_warning': {
        this.share.warned = true;
        say(
          msg.participant === this.you
            ? tn('say.you_left', msg.remaining_secs)
            : tn('say.they_left', msg.remaining_secs, { name: this.floor.speaker?.name ?? t('say.the_speaker') }),
        );
        changed.add(Part.FLOOR);
        break;
      }
      case 'share_expired': {
        this.share.warned = true;
        this.share.expired = true;
        say(msg.participant === this.you ? t('say.your_time_up') : t('say.their_time_up', { name: this.floor.speaker?.name ?? t('say.the_speaker_mid') }));
        changed.add(Part.FLOOR);
        break;
      }
      case 'chat': {
        const m = msg.message;
        this.chat.push(m);
        if (this.chat.length > MAX_CHAT) this.chat.splice(0, this.chat.length - MAX_CHAT);
        this.chatAdded.push(m);
        this.clockOffset = m.at - Date.now();
        if (m.from !== this.you) say(t(m.private ? 'say.private_chat' : 'say.chat', { name: m.name, text: m.text }));
        changed.add(Part.CHAT);
        break;
      }
      case 'chat_deleted':
        this.chat = this.chat.filter((m) => m.id !== msg.message);
        this.chatDeleted.push(msg.message);
        changed.add(Part.CHAT);
        break;
      case 'settings': {
        const before = this.settings;
        this.settings = msg.settings;
        const s = msg.settings;
        if (before.locked !== s.locked) say(s.locked ? t('say.locked') : t('say.unlocked'));
        if (before.chat_enabled !== s.chat_enabled) say(s.chat_enabled ? t('say.chat_on') : t('say.chat_off'));
        if (before.one_speaker !== s.one_speaker) {
          say(s.one_speaker ? t('say.one_speaker') : t('say.everyone_speaks'));
        }
        changed.add(Part.SETTINGS).add(Part.FLOOR).add(Part.ME).add(Part.CHAT);
        break;
      }
      case 'facilitator_present':
        if (this.facilitatorPresent !== msg.present) say(t(msg.present ? 'presence.facilitator_back_said' : 'presence.no_facilitator_said'));
        this.facilitatorPresent = msg.present;
        changed.add(Part.SETTINGS);
        break;
      case 'speakers':
        this.speaking = new Set(msg.participants);
        changed.add(Part.SPEAKING);
        break;
      case 'hearing':
        this.mayBeHeard = msg.may_be_heard;
        changed.add(Part.ME);
        break;
      default:
        // `removed`, `meeting_ended` and unsolicited `error`s are the session's and the app's.
        break;
    }
    return { changed, announce };
  }

  /**
   * `top` is the message the snapshot came in (`joined` may carry `standing` / `opens_at` itself).
   * `sameMeeting`: false when a `joined` starts a new meeting (a restart gave everyone new ids), whose
   * chat starts afresh.
   */
  load(room, top = {}, { sameMeeting = true } = {}) {
    this.title = room.title;
    this.settings = room.settings;
    this.standing = !!(room.standing ?? top.standing ?? this.standing);
    const opens = room.opens_at !== undefined ? room.opens_at : top.opens_at;
    this.opensAt = typeof opens === 'number' ? opens : null;
    this.facilitatorPresent = room.facilitator_present ?? true;
    const known = this.participants;
    for (const p of room.participants) this.noteMute(known.get(p.id), p);
    this.participants = new Map(room.participants.map((p) => [p.id, p]));
    this.counts = room.counts;
    this.connection = new Map((room.connection_quality ?? []).map((r) => [r.participant, r.level]));
    const before = this.floor.speaker;
    this.floor = room.floor;
    const after = room.floor.speaker;
    if (before?.participant !== after?.participant || before?.since !== after?.since) {
      this.share = { warned: false, expired: false };
    }
    // The server's history holds room messages only, and only its last ones: keep the private ones
    // this page already shows (a resume or a rebuilt view would otherwise make "I need to talk
    // after" vanish), and, in the same meeting, the room messages older than the history's first.
    // A meeting that moved to another node after its node died comes back with no history at all
    // (what was said stays on the node it was said on), and its members keep what they saw.
    // Within the history the server is right: a message deleted meanwhile goes.
    const historyStart = room.chat.length > 0 ? room.chat[0].id : Infinity;
    const kept = this.chat.filter((m) => m.private || (sameMeeting && m.id < historyStart));
    const inHistory = new Set(room.chat.map((m) => m.id));
    this.chat = [...room.chat, ...kept.filter((m) => !inHistory.has(m.id))]
      .sort((a, b) => a.id - b.id)
      .slice(-MAX_CHAT);
  }

  /** Admitted participants in roster order: facilitators first, then members, each in join order. */
  roster() {
    const admitted = [...this.participants.values()].filter((p) => p.presence !== 'waiting');
    return [
      ...admitted.filter((p) => p.role === 'facilitator'),
      ...admitted.filter((p) => p.role !== 'facilitator'),
    ];
  }

  /** People in the waiting room (facilitators see them; members never do). */
  waitingList() {
    return [...this.participants.values()].filter((p) => p.presence === 'waiting' && p.id !== this.you);
  }

  /** Milliseconds left in the current timed share, or null. */
  shareRemainingMs() {
    const ends = this.floor.speaker?.ends_at;
    return ends == null ? null : Math.max(0, ends - this.serverNow());
  }
}
