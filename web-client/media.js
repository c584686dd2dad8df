// The microphone: the check on the join page (a live level meter) and the local side of mute.
//
// The microphone is open only while it is needed: during the check, and while you are unmuted. Muting
// stops the tracks, so the browser's "microphone in use" light tells the truth.
//
// Voice is not here yet: `attach(session)` is the seam for it, and today it only remembers the session,
// so nothing leaves this page but the mute state the server already keeps. The server's side exists
// (`joined.media` and `joined.ice_servers`; `media_offer` / `media_answer` / `media_candidate` both
// ways; `stream` in each participant view; `speakers` events). What `attach` is to do:
//   1. when `joined.media` is true (and again after a resume: a `media_offer` always starts a fresh
//      session), create an RTCPeerConnection with `joined.ice_servers`, add an audio transceiver that
//      sends the microphone track while unmuted (`replaceTrack(track)` on unmute, `replaceTrack(null)`
//      on mute), send `media_offer {sdp}` and apply the `media_answer` that replies to it;
//   2. trickle candidates: `onicecandidate` -> `media_candidate {candidate: {candidate, sdp_mid,
//      sdp_mline_index}}`; a server `media_candidate` -> `addIceCandidate`;
//   3. answer the server's renegotiation `media_offer` with `media_answer`;
//   4. play each remote track (`ontrack`; `event.streams[0].id` matches a participant's `stream`) in an
//      <audio> element, and close the connection in `detach`.
// The speaking dots already follow `speakers` events (state.js).

const SPEAKING_LEVEL = 0.06; // RMS above which the local voice counts as speaking

export class Media extends EventTarget {
  constructor() {
    super();
    this.stream = null;
    this.audio = null; // { ctx, analyser, data, raf }
    /** 'unknown' | 'granted' | 'denied' | 'unavailable' */
    this.permission = 'unknown';
    this.session = null;
    this.speaking = false;
  }

  /** Opens the microphone. Resolves to true, or false if it was refused or there is none. */
  async open() {
    if (this.stream) return true;
    if (!navigator.mediaDevices?.getUserMedia) {
      this.permission = 'unavailable';
      return false;
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
        video: false,
      });
      this.permission = 'granted';
      this.startMeter();
      return true;
    } catch (e) {
      this.permission = e?.name === 'NotAllowedError' || e?.name === 'SecurityError' ? 'denied' : 'unavailable';
      return false;
    }
  }

  /** Closes the microphone. */
  close() {
    this.stopMeter();
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
    this.setSpeaking(false);
  }

  get isOpen() {
    return this.stream !== null;
  }

  /** Reads the level (0..1, RMS) of the open microphone; emits 'level' each frame and 'speaking'. */
  startMeter() {
    const Ctx = window.AudioContext ?? window.webkitAudioContext;
    if (!Ctx || !this.stream) return;
    const ctx = new Ctx();
    const source = ctx.createMediaStreamSource(this.stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const data = new Float32Array(analyser.fftSize);
    this.audio = { ctx, analyser, data, raf: 0 };
    if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    const tick = () => {
      if (!this.audio) return;
      analyser.getFloatTimeDomainData(data);
      let sum = 0;
      for (const v of data) sum += v * v;
      const level = Math.min(1, Math.sqrt(sum / data.length) * 2.5);
      this.dispatchEvent(new CustomEvent('level', { detail: level }));
      this.setSpeaking(level > SPEAKING_LEVEL);
      this.audio.raf = requestAnimationFrame(tick);
    };
    tick();
  }

  stopMeter() {
    if (!this.audio) return;
    cancelAnimationFrame(this.audio.raf);
    this.audio.ctx.close().catch(() => {});
    this.audio = null;
  }

  setSpeaking(speaking) {
    if (speaking === this.speaking) return;
    this.speaking = speaking;
    this.dispatchEvent(new CustomEvent('speaking', { detail: speaking }));
  }

  /** Follows the server's word on our mute state: a muted participant's microphone is closed. */
  async setMuted(muted) {
    if (muted) {
      this.close();
      return true;
    }
    return this.open();
  }

  /**
   * The seam for voice. TODO(voice): negotiate WebRTC audio with the server over `session` here (the
   * steps are at the top of this file). Today: local microphone only.
   */
  attach(session) {
    this.session = session;
  }

  /** Drops the session and closes the microphone. */
  detach() {
    this.session = null;
    this.close();
  }
}
