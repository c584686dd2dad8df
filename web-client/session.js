// The websocket session of one participant in one meeting.
//
// It opens the socket, sends `join` (or `resume`), matches each reply to its request by id, and after
// a dropped connection resumes by itself with the resume token (kept in sessionStorage, so a reload
// of the tab comes back too), backing off between tries. It never reconnects after the server said
// the session is over: removed, banned, denied, replaced by another window, the meeting ended.
//
// In a standing room it also comes back after a server restart, with no one touching the page:
//   - a graceful stop sends `carry_over` (a signed token: this person's place) before it closes; the
//     token is kept in this object only, never in storage, and the session rejoins with `join` +
//     `carry` (same pseudonym, device id and facilitator key) once the server answers again;
//   - after a hard stop (`kill -9`) there is no token: the resume fails once the server is back, and
//     the session joins afresh under the same pseudonym.
//
// Events (all `CustomEvent`s, payload in `detail`):
//   'message'  every server message that is not a reply (events, and `joined` after a resume or a
//              rejoin);
//   'status'   'open' | 'reconnecting' | 'restarting' (the server said it is restarting), when it
//              changes;
//   'end'      `{ reason, message }`, once, when the session is over for good.

import { websocketUrl } from './api.js';

/** The protocol version this client speaks. */
export const PROTOCOL = 1;

/** Resume tokens, per room, for this tab only. */
export const resumeStore = {
  load(room) {
    return sessionStorage.getItem(`circle.resume.${room}`);
  },
  save(room, token) {
    sessionStorage.setItem(`circle.resume.${room}`, token);
  },
  clear(room) {
    sessionStorage.removeItem(`circle.resume.${room}`);
  },
};

/**
 * A refused request: the server's `code` and `message`, or a local code (`unreachable`,
 * `disconnected`); with `wrong_node`, the `url` of the cluster node that holds the meeting.
 */
export class SessionError extends Error {
  constructor(code, message, url = null) {
    super(message);
    this.code = code;
    this.url = url;
  }
}

// Close codes the server uses for endings that must not be retried (circle-server conn.rs).
const FINAL_CLOSE_CODES = {
  4001: 'removed',
  4002: 'banned',
  4003: 'denied',
  4009: 'replaced',
  1001: 'server_shutdown',
};
// Close reasons sent with code 1000 that end the session.
const FINAL_CLOSE_REASONS = { 'meeting ended': 'meeting_ended', left: 'left' };
// A `resume` refused with one of these will never succeed.
const FINAL_RESUME_ERRORS = new Set([
  'session_gone',
  'invalid_token',
  'token_expired',
  'banned',
  'room_not_found',
  'unsupported_protocol',
]);
// A resume refused with one of these, in a standing room, is followed by a fresh join under the same
// pseudonym: after a hard stop of the server the meeting is a new one, and the old place is gone.
const REJOIN_AFTER_RESUME = new Set(['session_gone', 'invalid_token', 'token_expired', 'room_not_found']);
// A refused `carry` token (too old, or signed by a server that lost its key): join afresh instead.
const CARRY_REFUSED = new Set(['invalid_token', 'token_expired', 'bad_request']);
// A join refused with one of these may succeed later (the server is still starting or busy); any
// other refusal is final.
const PASSING_JOIN_ERRORS = new Set(['rate_limited', 'server_draining', 'server_busy', 'server_full', 'storage_unavailable', 'cluster_unavailable', 'internal']);
// A server of a cluster that does not hold the meeting answers `wrong_node` with the holder's URL
// (PROTOCOL.md): the session goes there, at most this many times in a row (a loop between servers
// that disagree must not spin).
const MAX_NODE_REDIRECTS = 3;

/** Whether `url` is a websocket URL this page may follow (never from `wss:` down to `ws:`). */
function followable(url) {
  try {
    const u = new URL(url);
    if (u.protocol === 'wss:') return true;
    return u.protocol === 'ws:' && location.protocol !== 'https:';
  } catch {
    return false;
  }
}
// Backoff between resume tries: the first comes quickly, later ones spread out (with jitter, so a
// server that restarts is not hit by every client at the same instant).
const RETRY_FIRST_MS = 400;
const RETRY_MAX_MS = 8000;
// While the server restarts the wait is short: people are mid-meeting, and it is back in seconds.
const RESTART_RETRY_MAX_MS = 3000;
// How long one connection attempt may take to open before it is given up and the next one made.
const CONNECT_TIMEOUT_MS = 15000;
// How long `leave` waits for the server's acknowledgement before giving up on it.
const LEAVE_TIMEOUT_MS = 2000;

export class Session extends EventTarget {
  /**
   * @param {string} room the room id
   * @param {{ secret?: string|null, device?: string|null }} [o] the facilitator key and device id,
   *   for rejoining after a restart when the session was entered by `resume`
   */
  constructor(room, { secret = null, device = null } = {}) {
    super();
    this.room = room;
    /** The members' link id new joins use: a facilitator learns a replaced one from `links`. */
    this.link = room;
    this.secret = secret;
    this.device = device;
    /** This person's pseudonym, from the last `joined` (a rejoin uses it again). */
    this.name = null;
    /** Whether the room is a standing one (from `joined`): only those come back after a restart. */
    this.standing = false;
    /** The `carry_over` token of a graceful restart: memory only, used once. */
    this.carry = null;
    /** The server said it is restarting: the close that follows is not the end. */
    this.restarting = false;
    /** The resume failed for good after a restart: the next tries are fresh joins. */
    this.rejoinFresh = false;
    /**
     * Since the last `joined`, an attempt found no server at all. A resume refused after that means
     * the server restarted and lost the meeting; one refused without it may mean the meeting ended
     * while this page was away, and then joining afresh would open a new meeting for no one.
     */
    this.sawUnreachable = false;
    /** The last `joined` came from a join after an earlier one (a rejoin after a restart). */
    this.rejoined = false;
    /** What the attempt in flight sent first: 'join' or 'resume'. */
    this.attemptKind = null;
    /** 'idle' before the first join, then 'open' | 'reconnecting' | 'restarting' | 'closed'. */
    this.status = 'idle';
    /** The websocket URL of the cluster node holding the meeting, once a server sent us there. */
    this.nodeUrl = null;
    /** `wrong_node` answers followed since the last `joined`. */
    this.redirects = 0;
    this.ws = null;
    this.token = null;
    this.nextId = 1;
    this.pending = new Map();
    this.attempt = 0;
    this.retryTimer = null;
    this.over = false;
    /** Set from a `removed` / `meeting_ended` message, read when the socket closes. */
    this.ending = null;
    /** The network came back while an attempt was in flight: if that attempt fails, retry at once. */
    this.onlineDuringAttempt = false;
    this.onOnline = () => {
      if (this.status === 'reconnecting' || this.status === 'restarting') this.retryNow();
    };
    window.addEventListener('online', this.onOnline);
  }

  /** Joins under a pseudonym; resolves with the `joined` message, rejects with a `SessionError`. */
  join({ name, secret, device }) {
    this.name = name;
    this.secret = secret ?? null;
    this.device = device ?? null;
    return this.connect(this.joinMessage());
  }

  /** `join` under this session's pseudonym, device id and key (with `carry` when one is given). */
  joinMessage(carry = null) {
    const msg = { type: 'join', protocol: PROTOCOL, room: this.link, name: this.name };
    if (this.secret) msg.secret = this.secret;
    if (this.device) msg.device = this.device;
    if (carry) msg.carry = carry;
    return msg;
  }

  /** Whether a restart brings this session back by itself. */
  get canRejoin() {
    return this.standing && !!this.name;
  }

  /** A facilitator replaced a link (`links`): later joins use the new link id and key. */
  useLinks({ join_url: joinUrl, facilitator_url: facUrl }) {
    const room = linkParam(joinUrl, 'room');
    if (room) this.link = room;
    const key = linkParam(facUrl, 'key');
    if (key && this.secret) this.secret = key;
  }

  /** Takes a session back with a resume token (after a reload of the tab). */
  resume(token) {
    return this.connect({ type: 'resume', protocol: PROTOCOL, room: this.room, token });
  }

  /** Sends a request; resolves with its reply (`ack`), rejects with a `SessionError` on its `error`. */
  request(type, fields = {}) {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (this.status !== 'open' || !ws || ws.readyState !== WebSocket.OPEN) {
        reject(new SessionError('not_connected', 'You are not connected right now; try again in a moment.'));
        return;
      }
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ type, id, ...fields }));
    });
  }

  /** Leaves the meeting for good. */
  async leave() {
    if (this.over) return;
    this.leaving = true;
    try {
      await Promise.race([
        this.request('leave'),
        new Promise((resolve) => setTimeout(resolve, LEAVE_TIMEOUT_MS)),
      ]);
    } catch {
      // Not connected: the server lets the place go when the grace period ends.
    }
    this.finish({ reason: 'left' });
  }

  /** Opens a socket and sends `first`; resolves on `joined`. */
  connect(first) {
    this.attemptKind = first.type;
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.nodeUrl ?? websocketUrl());
      } catch {
        reject(new SessionError('unreachable', 'Could not reach the meeting server.'));
        // Resuming: try again later, as after any failed attempt.
        if (this.token && !this.over) this.scheduleRetry();
        return;
      }
      this.ws = ws;
      let opened = false;
      const closed = (ev) => {
        if (ws !== this.ws) return; // handled already, or replaced
        clearTimeout(giveUp);
        this.ws = null;
        if (!opened) this.sawUnreachable = true;
        // The node we were sent to does not answer: the next try asks the server we started from,
        // which knows where the meeting is now.
        if (!opened) this.nodeUrl = null;
        this.failPending(
          opened
            ? new SessionError('disconnected', 'The connection was lost.')
            : new SessionError('unreachable', 'Could not reach the meeting server.'),
        );
        this.onClose(ev);
      };
      // An attempt that neither opens nor fails (a network that swallows packets) is given up, so
      // the next one can be made.
      const giveUp = setTimeout(() => {
        if (opened || ws !== this.ws) return;
        ws.onclose = null;
        ws.onerror = null;
        try {
          ws.close();
        } catch {
          // Already closing.
        }
        closed({ code: 1006, reason: '' });
      }, CONNECT_TIMEOUT_MS);
      ws.onopen = () => {
        opened = true;
        clearTimeout(giveUp);
        const id = this.nextId++;
        this.pending.set(id, {
          resolve: (joined) => resolve(joined),
          reject: (e) => {
            // A refused join or resume leaves the socket open; it is of no further use.
            this.closeQuietly(ws);
            if (e.code === 'wrong_node' && followable(e.url) && this.redirects < MAX_NODE_REDIRECTS) {
              // Another server of the cluster holds the meeting: send the same request there.
              this.redirects += 1;
              this.nodeUrl = e.url;
              this.connect(first).then(resolve, reject);
              return;
            }
            reject(e);
          },
        });
        ws.send(JSON.stringify({ ...first, id }));
      };
      ws.onmessage = (ev) => {
        if (ws === this.ws) this.onFrame(ev.data);
      };
      ws.onclose = closed;
      // A socket the browser will not open at all (one a content security policy blocks, say) fires
      // `error` and no `close`: without this the session would wait for it for ever.
      ws.onerror = () => {
        setTimeout(() => {
          if (ws.readyState === WebSocket.CLOSED) closed({ code: 1006, reason: '' });
        }, 0);
      };
    });
  }

  onFrame(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    // A reply carries its request's id (`ack`, `error`, `joined`, and any reply a later message type
    // brings); events carry none.
    const waiter = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
    if (waiter) {
      this.pending.delete(msg.id);
      if (msg.type === 'error') {
        waiter.reject(new SessionError(msg.code, msg.message, msg.url ?? null));
        return;
      }
      if (msg.type !== 'joined') {
        waiter.resolve(msg);
        return;
      }
    }
    if (msg.type === 'joined') {
      this.rejoined = this.token !== null && this.attemptKind === 'join';
      this.token = msg.resume_token;
      resumeStore.save(this.room, msg.resume_token);
      this.attempt = 0;
      this.redirects = 0;
      this.onlineDuringAttempt = false;
      this.standing = !!(msg.standing ?? msg.room?.standing);
      this.name = msg.room?.participants?.find((p) => p.id === msg.you)?.name ?? this.name;
      // A carry token is good for one rejoin; a new meeting, or the same one, needs no other.
      this.carry = null;
      this.restarting = false;
      this.rejoinFresh = false;
      this.sawUnreachable = false;
      this.setStatus('open');
    } else if (msg.type === 'carry_over') {
      this.carry = msg.token;
      this.restarting = true;
      return; // the session's own business: the page only sees the notice when the socket closes
    } else if (msg.type === 'removed' && msg.reason === 'server_shutdown' && (this.canRejoin || this.carry)) {
      this.restarting = true;
    } else if (msg.type === 'removed') {
      this.ending = { reason: msg.reason, message: msg.message };
    } else if (msg.type === 'meeting_ended') {
      this.ending = { reason: 'meeting_ended' };
    }
    this.dispatchEvent(new CustomEvent('message', { detail: msg }));
    if (waiter && msg.type === 'joined') waiter.resolve(msg);
  }

  onClose(ev) {
    if (this.over) return;
    if (this.restarting && !this.leaving) {
      // The server said it is restarting (1001 follows): come back once it answers again.
      this.ending = null;
      this.scheduleRetry();
      return;
    }
    let end = this.ending;
    // "Your connection could not keep up": the server's own words say reconnecting brings you back.
    if (end?.reason === 'slow_consumer') end = null;
    this.ending = null;
    if (!end && FINAL_CLOSE_CODES[ev.code]) end = { reason: FINAL_CLOSE_CODES[ev.code] };
    if (!end && ev.code === 1000 && FINAL_CLOSE_REASONS[ev.reason]) {
      end = { reason: FINAL_CLOSE_REASONS[ev.reason] };
    }
    if (!end && this.leaving) end = { reason: 'left' };
    if (end) {
      this.finish(end);
    } else if (this.token && this.onlineDuringAttempt) {
      // The attempt was made before the network came back: the next one need not wait.
      this.onlineDuringAttempt = false;
      this.setStatus('reconnecting');
      this.retryNow();
    } else if (this.token) {
      // Any other close (network drop, server restart, a close code we do not know): try to resume;
      // the server's answer to `resume` is final.
      this.scheduleRetry();
    }
    // Before the first `joined`, the pending join was rejected and the caller shows why.
  }

  scheduleRetry() {
    this.setStatus(this.restarting ? 'restarting' : 'reconnecting');
    clearTimeout(this.retryTimer);
    const max = this.restarting || this.rejoinFresh ? RESTART_RETRY_MAX_MS : RETRY_MAX_MS;
    const base = Math.min(max, RETRY_FIRST_MS * 2 ** this.attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.tryAgain(), delay);
  }

  /**
   * The network is back (the browser's `online` event): try now, and start the backoff over. If an
   * attempt is already in flight it may have been made while still offline; should it fail, the
   * next one follows at once instead of after a full backoff.
   */
  retryNow() {
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    if (this.ws) {
      this.onlineDuringAttempt = true;
      return;
    }
    this.tryAgain();
  }

  /**
   * One attempt to come back: `join` + `carry` after a graceful restart, a fresh `join` once a resume
   * failed for good after one, else `resume`.
   */
  tryAgain() {
    if (this.over || this.ws) return;
    let first;
    if (this.carry) first = this.joinMessage(this.carry);
    else if (this.rejoinFresh) first = this.joinMessage();
    else first = { type: 'resume', protocol: PROTOCOL, room: this.room, token: this.token };
    this.connect(first).catch((e) => this.refused(first, e));
  }

  /** What follows a refused attempt to come back. */
  refused(first, e) {
    if (this.over) return;
    // A failed socket already scheduled the next try from its close handler.
    if (e.code === 'disconnected' || e.code === 'unreachable') return;
    this.ws = null;
    if (first.type === 'resume' && FINAL_RESUME_ERRORS.has(e.code)) {
      if (this.canRejoin && REJOIN_AFTER_RESUME.has(e.code) && (this.restarting || this.sawUnreachable)) {
        // The server lost the meeting (a hard stop): the same name, in its new meeting.
        this.rejoinFresh = true;
        this.attempt = 0;
        this.tryAgain();
      } else {
        this.finish({ reason: e.code, message: e.message });
      }
    } else if (first.carry && CARRY_REFUSED.has(e.code)) {
      this.carry = null;
      this.rejoinFresh = true;
      this.tryAgain();
    } else if (first.type === 'join' && !PASSING_JOIN_ERRORS.has(e.code)) {
      this.finish({ reason: e.code, message: e.message });
    } else {
      // Refused for a passing reason (rate limited, still starting, an internal error): try later.
      this.scheduleRetry();
    }
  }

  /** Ends the session for good, once. */
  finish(end) {
    if (this.over) return;
    this.over = true;
    clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    if (this.ws) this.closeQuietly(this.ws);
    this.ws = null;
    this.failPending(new SessionError('disconnected', 'The session has ended.'));
    this.token = null;
    resumeStore.clear(this.room);
    this.setStatus('closed');
    this.dispatchEvent(new CustomEvent('end', { detail: end }));
  }

  closeQuietly(ws) {
    ws.onclose = null;
    ws.onerror = null;
    ws.onmessage = null;
    if (ws === this.ws) this.ws = null;
    try {
      ws.close(1000);
    } catch {
      // Already closed.
    }
  }

  failPending(err) {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const w of waiting) w.reject(err);
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent('status', { detail: status }));
  }
}

/** A parameter of a link's fragment (`#room=…&key=…`), or null. */
function linkParam(url, name) {
  if (!url) return null;
  try {
    return new URLSearchParams(new URL(url, location.href).hash.slice(1)).get(name);
  } catch {
    return null;
  }
}
