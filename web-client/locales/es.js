// The web client's text in Spanish, by key. Each area keeps its keys in its own section.
export default {
  // --- general ---

  // --- presence: arrivals, places, no facilitator, locked or full ---
  'presence.backInPlace': 'Has vuelto. Tienes de nuevo tu lugar, con el micrófono apagado.',
  'presence.noFacilitatorNotice': 'Ahora mismo no hay ninguna persona facilitadora. La reunión sigue; quienes están en la sala de espera entrarán, y se dará la palabra, cuando vuelva una.',
  'presence.noFacilitatorSaid': 'Ahora mismo no hay ninguna persona facilitadora.',
  'presence.facilitatorBackSaid': 'Ya hay una persona facilitadora.',
  'presence.waitingNoFacilitator': 'Todavía no hay ninguna persona facilitadora',
  'presence.waitingNoFacilitatorWords': 'Podrás entrar cuando llegue una. Puedes seguir esperando aquí.',
  'presence.lastLeaveTitle': 'Eres la única persona facilitadora',
  'presence.lastLeaveBody': 'Si sales, nadie podrá dejar entrar a quienes esperan ni dar la palabra hasta que vuelva una persona facilitadora. Antes de salir, puedes nombrar a otra persona para facilitar.',
  'presence.lastLeaveBodyAlone': 'Si sales, nadie podrá dejar entrar a quienes esperan ni dar la palabra hasta que vuelva una persona facilitadora.',
  'presence.lastLeaveChoose': 'Nueva persona facilitadora',
  'presence.lastLeavePromote': 'Nombrarla y salir',
  'presence.lastLeaveAnyway': 'Salir de todos modos',
  'presence.lastLeaveStay': 'Quedarme',
  'presence.lockedNotice': 'Esta reunión está cerrada en este momento, así que no pueden entrar personas nuevas. Si esperabas entrar, avisa a quien te envió el enlace, o vuelve a intentarlo más tarde.',
  'presence.fullNotice': 'Esta reunión está completa en este momento. Puedes volver a intentarlo dentro de un rato, cuando alguien salga.',

  // --- reactions and connection quality ---

  // --- phone tabs ---

};
