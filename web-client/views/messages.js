// What each server error code means to a person, in plain words.

const JOIN = {
  room_not_found: 'This meeting does not exist or has ended. Check the link with the person who sent it.',
  room_locked: 'The facilitator has locked this meeting, so no one new can join right now.',
  room_full: 'This meeting is full. Please try again later.',
  banned: 'You cannot join this meeting.',
  name_taken: 'Someone in this meeting already uses this name. Please choose another one.',
  invalid_name: 'Please choose a name of 1 to 32 characters, without special symbols or line breaks.',
  bad_secret: 'This facilitator link is not valid for this meeting. Check that you copied the whole link.',
  unsupported_protocol: 'This page is out of date for the meeting server. Please reload the page.',
  unreachable: 'Could not reach the meeting server. Check your internet connection and try again.',
  disconnected: 'The connection was lost while joining. Please try again.',
  rate_limited: 'Too many tries in a short time. Please wait a moment and try again.',
  storage_unavailable: 'The meeting server cannot look up this meeting just now. Please try again in a minute.',
  server_draining: 'The meeting server is about to restart, so no new meeting can start on it now. Please try again in a few minutes.',
};

const REQUEST = {
  forbidden: 'Only a facilitator can do that.',
  waiting: 'You are still in the waiting room.',
  unknown_participant: 'That person is no longer here.',
  unknown_message: 'That message is no longer in the chat.',
  invalid_text: 'A message must have some text and at most 2,000 characters.',
  chat_disabled: 'The facilitator has turned the chat off.',
  chat_not_allowed: 'A facilitator has paused your chat.',
  muted_by_facilitator: 'A facilitator has muted you. You can unmute when they allow you to speak.',
  rate_limited: 'You are going a little fast. Please wait a moment and try again.',
  not_connected: 'You are not connected right now. Please try again in a moment.',
  disconnected: 'The connection was lost. Please try again in a moment.',
};

/** The message for a refused join. */
export function joinErrorText(code, fallback) {
  return JOIN[code] ?? fallback ?? 'Something went wrong while joining. Please try again.';
}

/** The message for a refused request in the room (the server's own words when we have none). */
export function requestErrorText(err) {
  if (err.code === 'bad_target') return capitalise(err.message);
  return REQUEST[err.code] ?? capitalise(err.message ?? 'Something went wrong.');
}

/** The end screen for each way a session ends. */
export function endText(end) {
  switch (end.reason) {
    case 'meeting_ended':
      return {
        title: 'The meeting has ended',
        body: 'Thank you for being here. Nothing from this meeting is kept: the chat is gone with it.',
      };
    case 'left':
      return { title: 'You left the meeting', body: 'You can rejoin with the same link while the meeting goes on.', rejoin: true };
    case 'removed':
      return {
        title: 'You are no longer in this meeting',
        body: end.message ?? 'A facilitator removed you from this meeting.',
        next: 'If you would like to come back, you can ask to join again with the same link. A facilitator decides whether to let you in.',
        rejoin: true,
        rejoinLabel: 'Ask to join again',
      };
    case 'banned':
      return {
        title: 'You are no longer in this meeting',
        body: end.message ?? 'A facilitator removed you from this meeting, and you cannot rejoin it.',
        next: 'If you think this was a mistake, please contact the person who sent you the link.',
      };
    case 'denied':
      return {
        title: 'You were not let in',
        body: end.message ?? 'A facilitator did not let you into this meeting.',
        next: 'If you think this was a mistake, please contact the person who sent you the link.',
      };
    case 'replaced':
      return {
        title: 'This meeting is open somewhere else',
        body: end.message ?? 'You joined this meeting from another window or device.',
      };
    case 'server_shutdown':
      return { title: 'The server is restarting', body: end.message ?? 'Please rejoin in a minute.', rejoin: true };
    case 'room_not_found':
      return { title: 'The meeting has ended', body: 'This meeting does not exist any more.' };
    case 'session_gone':
    case 'token_expired':
    case 'invalid_token':
      return {
        title: 'We could not bring you back',
        body: 'Your connection was gone for too long, so your place in the meeting was given up. You can rejoin with the same link.',
        rejoin: true,
      };
    default:
      return { title: 'You are no longer in this meeting', body: end.message ?? 'The connection to the meeting ended.', rejoin: true };
  }
}

function capitalise(s) {
  return s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.') : s;
}
