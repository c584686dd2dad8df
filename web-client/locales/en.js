// The web client's text in English, by key. Each area keeps its keys in its own section.
export default {
  // --- general ---

  // --- presence: arrivals, places, no facilitator, locked or full ---
  'presence.backInPlace': 'Welcome back. You have your place again, with your microphone off.',
  'presence.noFacilitatorNotice': 'No facilitator is here right now. The meeting goes on; people in the waiting room are let in, and the floor is handed on, when a facilitator is back.',
  'presence.noFacilitatorSaid': 'No facilitator is here right now.',
  'presence.facilitatorBackSaid': 'A facilitator is here.',
  'presence.waitingNoFacilitator': 'No facilitator is here yet',
  'presence.waitingNoFacilitatorWords': 'You will be let in when one arrives. You can keep waiting here.',
  'presence.lastLeaveTitle': 'You are the only facilitator',
  'presence.lastLeaveBody': 'If you leave, no one can let people in from the waiting room or give the floor until a facilitator comes back. You can make someone a facilitator first.',
  'presence.lastLeaveBodyAlone': 'If you leave, no one can let people in from the waiting room or give the floor until a facilitator comes back.',
  'presence.lastLeaveChoose': 'New facilitator',
  'presence.lastLeavePromote': 'Make them facilitator and leave',
  'presence.lastLeaveAnyway': 'Leave anyway',
  'presence.lastLeaveStay': 'Stay',
  'presence.lockedNotice': 'This meeting is locked right now, so new people cannot join. If you were expecting to join, let the person who sent you the link know, or try again later.',
  'presence.fullNotice': 'This meeting is full right now. You can try again in a little while, when someone leaves.',

  // --- reactions and connection quality ---

  // --- phone tabs ---

};
