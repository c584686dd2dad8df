// The web client's text in English, by key. Each area keeps its keys in its own section.
export default {
  // --- general ---

  // --- presence: arrivals, places, no facilitator, locked or full ---

  // --- reactions and connection quality ---

  // --- phone tabs ---

};
