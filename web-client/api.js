// The server's HTTP API: create a room, look one up, and the organiser's API for standing rooms
// (organiser.js). Errors arrive as `ApiError` with the server's stable `code` (`room_not_found`,
// `unauthorized`, ...) or `unreachable` when there was no answer.

import { SERVER_URL } from './config.js';

export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function call(method, path, body, headers = {}) {
  let res;
  try {
    res = await fetch(new URL(path, SERVER_URL), {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      // Nothing about a meeting belongs in a cache or a referrer.
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiError('unreachable', 'Could not reach the meeting server.');
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    // A proxy's HTML error page, or an empty body: the status says enough.
  }
  if (!res.ok) {
    throw new ApiError(data?.code ?? `http_${res.status}`, data?.message ?? res.statusText, res.status);
  }
  return data;
}

/**
 * Creates a room. `settings` is a partial settings object (absent fields take the server's defaults).
 * Returns `{ room, title, join_url, facilitator_url, facilitator_secret, websocket_url, settings }`.
 */
export function createRoom({ title, settings, operatorKey }) {
  const headers = operatorKey ? { authorization: `Bearer ${operatorKey}` } : {};
  return call('POST', '/api/rooms', { title, settings }, headers);
}

/** What anyone with the link may know before joining: `{ room, title }`, or `null` if there is no such room. */
export async function roomInfo(room) {
  try {
    return await call('GET', `/api/rooms/${encodeURIComponent(room)}`);
  } catch (e) {
    if (e.code === 'room_not_found') return null;
    throw e;
  }
}

/**
 * The organiser's API (PROTOCOL.md "Organiser API"), under the operator key. Every call rejects with
 * an ApiError; `call` is exposed for the page's own few requests.
 */
export function organiserApi(operatorKey) {
  const auth = { authorization: `Bearer ${operatorKey}` };
  const room = (id) => `/api/standing/${encodeURIComponent(id)}`;
  return {
    /** `[StandingView]`, ordered by title. */
    list: () => call('GET', '/api/standing', undefined, auth),
    /** `{title, settings?, schedule?, early_open_mins?}` → StandingView + `facilitator_url`, `facilitator_secret`. */
    create: (body) => call('POST', '/api/standing', body, auth),
    remove: (id) => call('DELETE', room(id), undefined, auth),
    /** `which`: 'members' | 'facilitator'. */
    rotate: (id, which) => call('POST', `${room(id)}/rotate`, { link: which }, auth),
    /** Live meetings with counts: `[{meeting, standing, title, participants, waiting}]`. */
    meetings: () => call('GET', '/api/meetings', undefined, auth),
    endMeeting: (tag) => call('POST', `/api/meetings/${encodeURIComponent(tag)}/end`, undefined, auth),
  };
}

/** The websocket address of the server. */
export function websocketUrl() {
  const url = new URL('/ws', SERVER_URL);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}
