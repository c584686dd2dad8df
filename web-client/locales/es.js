// The web client's text in Spanish, by key. Each area keeps its keys in its own section.
export default {
  // --- general ---

  // --- presence: arrivals, places, no facilitator, locked or full ---

  // --- reactions and connection quality ---

  // --- phone tabs ---
  'tabs.label': 'Partes de la reunión',
  'tabs.speaking': 'Turnos',
  'tabs.people': 'Personas',
  'tabs.chat': 'Chat',
  'tabs.facilitator': 'Facilitar',
  'tabs.with_badge': '{tab}, {badge}',
  'tabs.new_messages.one': '{count} mensaje nuevo',
  'tabs.new_messages.other': '{count} mensajes nuevos',
  'tabs.waiting.one': '{count} persona esperando para entrar',
  'tabs.waiting.other': '{count} personas esperando para entrar',

};
