// The websocket session of one participant in one meeting.
//
// It opens the socket, sends `join` (or `resume`), matches each reply to its request by id, and after
// a dropped connection resumes by itself with the resume token (kept in sessionStorage, so a reload
// of the tab comes back too), backing off between tries. It never reconnects after the server said
// the session is over: removed, banned, denied, replaced by another window, the meeting ended.
//
// Events (all `CustomEvent`s, payload in `detail`):
//   'message'  every server message that is not a reply (events, and `joined` after a resume);
//   'status'   'open' | 'reconnecting', when it changes;
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

/** A refused request: the server's `code` and `message`, or a local code (`unreachable`, `disconnected`). */
export class SessionError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
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
// Backoff between resume tries: the first comes quickly, later ones spread out (with jitter, so a
// server that restarts is not hit by every client at the same instant).
const RETRY_FIRST_MS = 400;
const RETRY_MAX_MS = 8000;
// How long one connection attempt may take to open before it is given up and the next one made.
const CONNECT_TIMEOUT_MS = 15000;
// How long `leave` waits for the server's acknowledgement before giving up on it.
const LEAVE_TIMEOUT_MS = 2000;

export class Session extends EventTarget {
  /** @param {string} room the room id */
  constructor(room) {
    super();
    this.room = room;
    /** 'idle' before the first join, then 'open' | 'reconnecting' | 'closed'. */
    this.status = 'idle';
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
      if (this.status === 'reconnecting') this.retryNow();
    };
    window.addEventListener('online', this.onOnline);
  }

  /** Joins under a pseudonym; resolves with the `joined` message, rejects with a `SessionError`. */
  join({ name, secret, device }) {
    const msg = { type: 'join', protocol: PROTOCOL, room: this.room, name };
    if (secret) msg.secret = secret;
    if (device) msg.device = device;
    return this.connect(msg);
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
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(websocketUrl());
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
        waiter.reject(new SessionError(msg.code, msg.message));
        return;
      }
      if (msg.type !== 'joined') {
        waiter.resolve(msg);
        return;
      }
    }
    if (msg.type === 'joined') {
      this.token = msg.resume_token;
      resumeStore.save(this.room, msg.resume_token);
      this.attempt = 0;
      this.onlineDuringAttempt = false;
      this.setStatus('open');
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
    this.setStatus('reconnecting');
    clearTimeout(this.retryTimer);
    const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.tryResume(), delay);
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
    this.tryResume();
  }

  tryResume() {
    if (this.over || this.ws) return;
    this.connect({ type: 'resume', protocol: PROTOCOL, room: this.room, token: this.token }).catch((e) => {
      if (this.over) return;
      if (FINAL_RESUME_ERRORS.has(e.code)) {
        this.finish({ reason: e.code, message: e.message });
      } else if (e.code !== 'disconnected' && e.code !== 'unreachable') {
        // Refused for a passing reason (rate limited, an internal error): close and try again later.
        this.ws = null;
        this.scheduleRetry();
      }
      // A failed socket already scheduled the next try from its close handler.
    });
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
