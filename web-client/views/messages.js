// What each server error code means to a person, in plain words (from the catalogue: error.join.*,
// error.request.*, end.*).

import { has, t } from '../i18n.js';

/** The message for a refused join. */
export function joinErrorText(code, fallback) {
  const key = `error.join.${code}`;
  return has(key) ? t(key) : (fallback ?? t('error.join.other'));
}

/** The message for a refused request in the room (the server's own words when we have none). */
export function requestErrorText(err) {
  if (err.code === 'bad_target') return capitalise(err.message);
  const key = `error.request.${err.code}`;
  return has(key) ? t(key) : capitalise(err.message ?? t('error.request.other'));
}

/**
 * The end screen for each way a session ends. For the reasons the client knows, its own words (the
 * server's `message` says the same, in English); for others, the server's.
 */
export function endText(end) {
  switch (end.reason) {
    case 'meeting_ended':
      return { title: t('end.ended.title'), body: t('end.ended.body') };
    case 'left':
      return { title: t('end.left.title'), body: t('end.left.body'), rejoin: true };
    case 'removed':
      return {
        title: t('end.gone.title'),
        body: t('end.removed.body'),
        next: t('end.removed.next'),
        rejoin: true,
        rejoinLabel: t('end.removed.rejoin'),
      };
    case 'banned':
      return { title: t('end.gone.title'), body: t('end.banned.body'), next: t('end.mistake') };
    case 'denied':
      return { title: t('end.denied.title'), body: t('end.denied.body'), next: t('end.mistake') };
    case 'replaced':
      return { title: t('end.replaced.title'), body: t('end.replaced.body') };
    case 'server_shutdown':
      return { title: t('end.shutdown.title'), body: t('end.shutdown.body'), rejoin: true };
    case 'room_not_found':
      return { title: t('end.ended.title'), body: t('end.not_found.body') };
    case 'session_gone':
    case 'token_expired':
    case 'invalid_token':
      return { title: t('end.expired.title'), body: t('end.expired.body'), rejoin: true };
    default:
      return { title: t('end.gone.title'), body: end.message ?? t('end.other.body'), rejoin: true };
  }
}

function capitalise(s) {
  return s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.') : s;
}
