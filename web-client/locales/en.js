// The web client's text in English, by key. Each area keeps its keys in its own section.
export default {
  // --- general ---

  // --- presence: arrivals, places, no facilitator, locked or full ---

  // --- reactions and connection quality ---

  // --- phone tabs ---
  'tabs.label': 'Parts of the meeting',
  'tabs.speaking': 'Speaking',
  'tabs.people': 'People',
  'tabs.chat': 'Chat',
  'tabs.facilitator': 'Facilitator',
  'tabs.with_badge': '{tab}, {badge}',
  'tabs.new_messages.one': '{count} new message',
  'tabs.new_messages.other': '{count} new messages',
  'tabs.waiting.one': '{count} person waiting to join',
  'tabs.waiting.other': '{count} people waiting to join',

};
