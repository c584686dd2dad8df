// The room model (web-client/state.js) without a browser: server messages in, model and
// announcements out.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Part, RoomState } from '../../web-client/state.js';

const settings = {
  waiting_room: true,
  roster_privacy: false,
  one_speaker: false,
  mute_on_entry: true,
  share_secs: 180,
  share_warning_secs: 30,
  auto_end_share: false,
  chat_enabled: true,
  locked: false,
};

function person(id, name, extra = {}) {
  return {
    id,
    name,
    role: 'member',
    presence: 'online',
    hand_raised_at: null,
    self_muted: true,
    muted_by_facilitator: false,
    chat_allowed: true,
    ...extra,
  };
}

function joined({ waiting = false, role = 'member' } = {}) {
  return {
    type: 'joined',
    protocol: 1,
    you: 'me',
    role,
    resume_token: 't',
    grace_secs: 30,
    waiting,
    room: {
      title: 'Tuesday circle',
      settings,
      participants: [person('f', 'Maya', { role: 'facilitator' }), person('me', 'Robin', { role })],
      counts: { members: 1, facilitators: 1, waiting: 0 },
      floor: { speaker: null, queue: [] },
      chat: [{ id: 1, from: 'f', name: 'Maya', text: 'Welcome', at: 1, private: false }],
    },
  };
}

test('joined loads the snapshot; admitted switches from the waiting room to the room', () => {
  const s = new RoomState();
  let r = s.apply(joined({ waiting: true }));
  assert.ok(r.changed.has(Part.VIEW));
  assert.equal(s.waiting, true);
  assert.equal(s.me.name, 'Robin');
  r = s.apply({ type: 'admitted', room: joined().room });
  assert.equal(s.waiting, false);
  assert.ok(r.changed.has(Part.VIEW));
  assert.deepEqual(r.announce, ['You are in the meeting. You are muted.']);
  assert.deepEqual(s.roster().map((p) => p.name), ['Maya', 'Robin']);
  assert.equal(s.chat.length, 1);
});

test('a new speaker is announced, the share timer resets, and a warning is remembered', () => {
  const s = new RoomState();
  s.apply(joined());
  const now = Date.now();
  let r = s.apply({
    type: 'floor',
    floor: { speaker: { participant: 'f', name: 'Maya', since: now, ends_at: now + 180_000 }, queue: [] },
  });
  assert.deepEqual(r.announce, ['Maya has the floor.']);
  const left = s.shareRemainingMs();
  assert.ok(left > 179_000 && left <= 180_000, String(left));
  r = s.apply({ type: 'share_warning', participant: 'f', remaining_secs: 30 });
  assert.equal(s.share.warned, true);
  assert.deepEqual(r.announce, ['Maya has 30 seconds left.']);
  r = s.apply({ type: 'floor', floor: { speaker: { participant: 'me', name: 'Robin', since: now + 5, ends_at: null }, queue: [] } });
  assert.equal(s.share.warned, false);
  assert.deepEqual(r.announce, ['You have the floor. Unmute when you are ready.']);
  r = s.apply({ type: 'floor', floor: { speaker: null, queue: [] } });
  assert.deepEqual(r.announce, ['No one has the floor now.']);
});

test('being muted by a facilitator, and allowed again, is announced to you', () => {
  const s = new RoomState();
  s.apply(joined());
  let r = s.apply({ type: 'participant_updated', participant: person('me', 'Robin', { muted_by_facilitator: true }) });
  assert.deepEqual(r.announce, ['A facilitator muted you.']);
  assert.ok(r.changed.has(Part.ME));
  r = s.apply({ type: 'participant_updated', participant: person('me', 'Robin') });
  assert.deepEqual(r.announce, ['You may speak now. Unmute when you are ready.']);
});

test('chat: others’ messages are announced, private ones say so, deletions leave the log', () => {
  const s = new RoomState();
  s.apply(joined());
  let r = s.apply({ type: 'chat', message: { id: 2, from: 'f', name: 'Maya', text: 'Hello', at: Date.now(), private: false } });
  assert.deepEqual(r.announce, ['Maya: Hello']);
  assert.deepEqual(s.chatAdded.map((m) => m.id), [2]);
  r = s.apply({ type: 'chat', message: { id: 3, from: 'f', name: 'Maya', text: 'Stay after?', at: Date.now(), private: true, to: 'me' } });
  assert.deepEqual(r.announce, ['Private message from Maya: Stay after?']);
  r = s.apply({ type: 'chat', message: { id: 4, from: 'me', name: 'Robin', text: 'Mine', at: Date.now(), private: false } });
  assert.deepEqual(r.announce, []);
  s.apply({ type: 'chat_deleted', message: 2 });
  assert.deepEqual(s.chat.map((m) => m.id), [1, 3, 4]);
  assert.deepEqual(s.chatDeleted, [2]);
});

test('a role change in a new room state is announced; facilitators see the waiting list', () => {
  const s = new RoomState();
  s.apply(joined());
  const room = joined({ role: 'facilitator' }).room;
  room.participants.push(person('w', 'Kim', { presence: 'waiting' }));
  const r = s.apply({ type: 'room_state', room });
  assert.equal(s.isFacilitator, true);
  assert.deepEqual(r.announce, ['You are now a co-facilitator.']);
  assert.deepEqual(s.waitingList().map((p) => p.name), ['Kim']);
  assert.deepEqual(s.roster().map((p) => p.name), ['Maya', 'Robin']);
});

test('settings changes that matter to everyone are announced', () => {
  const s = new RoomState();
  s.apply(joined());
  const r = s.apply({ type: 'settings', settings: { ...settings, locked: true, chat_enabled: false } });
  assert.deepEqual(r.announce, ['The room is now locked.', 'Chat is turned off.']);
});

test('a new snapshot (resume, rebuilt view) keeps the private messages already shown', () => {
  const s = new RoomState();
  s.apply(joined());
  s.apply({ type: 'chat', message: { id: 5, from: 'me', name: 'Robin', text: 'Can we talk after?', at: 2, private: true } });
  s.apply({ type: 'chat', message: { id: 6, from: 'f', name: 'Maya', text: 'Room line', at: 3, private: false } });
  const room = joined().room;
  room.chat.push({ id: 6, from: 'f', name: 'Maya', text: 'Room line', at: 3, private: false });
  s.apply({ ...joined(), room });
  assert.deepEqual(s.chat.map((m) => m.id), [1, 5, 6]);
});

test('back in the same meeting, what the page showed before the server\'s history stays; a new meeting starts afresh', () => {
  const s = new RoomState();
  s.apply(joined());
  s.apply({ type: 'chat', message: { id: 2, from: 'f', name: 'Maya', text: 'Deleted later', at: 2, private: false } });
  s.apply({ type: 'chat', message: { id: 3, from: 'f', name: 'Maya', text: 'Still here', at: 3, private: false } });
  // The meeting moved to another node after its node died: the same ids, no history at all.
  const moved = joined().room;
  moved.chat = [];
  s.apply({ ...joined(), room: moved });
  assert.deepEqual(s.chat.map((m) => m.text), ['Welcome', 'Deleted later', 'Still here']);
  // Within the server's history the server is right: a message deleted meanwhile goes.
  const resumed = joined().room;
  resumed.chat.push({ id: 3, from: 'f', name: 'Maya', text: 'Still here', at: 3, private: false });
  s.apply({ ...joined(), room: resumed });
  assert.deepEqual(s.chat.map((m) => m.id), [1, 3]);
  // A restart's new meeting (everyone has a new id): its chat starts afresh.
  const fresh = joined().room;
  fresh.participants = [person('f2', 'Maya', { role: 'facilitator' }), person('me2', 'Robin')];
  fresh.chat = [];
  s.apply({ ...joined(), you: 'me2', room: fresh });
  assert.deepEqual(s.chat, []);
});

test('who is speaking changes only the speaking part (painted in place, never a redraw), silently', () => {
  const s = new RoomState();
  s.apply(joined());
  const r = s.apply({ type: 'speakers', participants: ['f'] });
  assert.deepEqual([...r.changed], [Part.SPEAKING]);
  assert.deepEqual(r.announce, []);
  assert.ok(s.speaking.has('f'));
  s.apply({ type: 'speakers', participants: [] });
  assert.equal(s.speaking.size, 0);
});

test('a mute on arrival is the room’s rule; a mute that turns on later is a facilitator’s, and a reload remembers it', () => {
  const s = new RoomState();
  const arriving = joined();
  arriving.room.participants[1] = person('me', 'Robin', { muted_by_facilitator: true });
  s.apply(arriving);
  assert.equal(s.mutedOnEntry(s.me), true);
  // Allowed to speak, then muted by a facilitator.
  s.apply({ type: 'participant_updated', participant: person('me', 'Robin') });
  assert.equal(s.mutedOnEntry(s.me), false);
  const r = s.apply({ type: 'participant_updated', participant: person('me', 'Robin', { muted_by_facilitator: true }) });
  assert.equal(s.mutedOnEntry(s.me), false);
  assert.ok(s.sanctioned.has('me'));
  assert.deepEqual(r.announce, ['A facilitator muted you.']);
  // A newcomer who arrives muted while this page watches waits for a turn.
  s.apply({ type: 'participant_joined', participant: person('k', 'Kim', { muted_by_facilitator: true }) });
  assert.equal(s.mutedOnEntry(s.participants.get('k')), true);
  // The tab reloads: the snapshot alone cannot tell, the remembered ids can.
  const again = new RoomState({ sanctioned: [...s.sanctioned] });
  again.apply(arriving);
  assert.equal(again.mutedOnEntry(again.me), false);
});
