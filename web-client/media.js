// The microphone and the voice connection.
//
// The microphone: the check on the join page (a live level meter) and the local side of mute. It is
// open only while it is needed: during the check, and while you are unmuted. Muting stops the tracks,
// so the browser's "microphone in use" light tells the truth, and takes the track off the voice
// connection (`replaceTrack(null)`), so nothing is sent.
//
// Voice: `attach(session, joined, state)` negotiates WebRTC audio with the server's relay over the
// websocket, when `joined.media` says the server relays voice.
//   - The client makes the first offer (`media_offer`), with one audio transceiver: sendrecv (the
//     microphone track on it only while unmuted), or recvonly when this page already knows there is
//     no microphone or it was refused (listen only; if one is allowed later, a fresh offer sends
//     it). The server's `media_answer` carries the request id. Every client
//     offer starts a fresh session on the server: after a resume (a new `joined`) the old connection
//     is closed and a new one offered. Server `media_offer`s that arrive between our offer and its
//     answer belong to the old session and are ignored (the websocket is ordered).
//   - The server then renegotiates (`media_offer`) as members come and go; we answer (`media_answer`).
//     Each other member's voice is its own track whose stream id is that member's `stream` in the
//     roster; each plays in its own <audio> element (per-person volume: `setVolume`).
//   - ICE: the server is ICE-lite and its host candidate is in its SDP; our candidates are trickled
//     (`media_candidate`), except mDNS-hidden ones (`….local`), which are of no use to it. A failed
//     connection (or a refused offer or answer) is offered afresh, with backoff.
//   - `detach` (leave, removed, meeting ended) closes the connection and the players.
// Devices: the microphone and the speaker can be chosen (`devices`, `setMicDevice`,
// `setSpeakerDevice`, where the browser has `setSinkId`); `chime` plays a short tone through the chosen
// speaker (the test sound, a new arrival). Events besides 'level' and 'speaking': 'mic-lost' (the
// microphone was unplugged: it is closed), 'playback' ('blocked' when the autoplay policy holds the
// voices back until a tap or key, 'playing' once it lets go).
// The speaking dots follow the server's `speakers` events (state.js). `stats()` sums up the
// connection's `getStats()` per remote stream, for diagnostics and the browser tests.

import { t } from './i18n.js';

const SPEAKING_LEVEL = 0.06; // RMS above which the local voice counts as speaking
// A voice connection that failed (or an offer the server refused) is offered afresh after this,
// doubling up to the maximum, while the websocket is open.
const VOICE_RETRY_FIRST_MS = 1000;
const VOICE_RETRY_MAX_MS = 15000;
// After `rate_limited` on an offer: the server's budget refills one session every 6 s.
const VOICE_RATE_LIMITED_MS = 6500;
// The chime lasts under half a second; past this, stop waiting for it to end.
const CHIME_MAX_MS = 3000;

export class Media extends EventTarget {
  constructor() {
    super();
    this.stream = null;
    this.audio = null; // { ctx, analyser, data, raf }
    /** 'unknown' | 'granted' | 'denied' | 'unavailable' */
    this.permission = 'unknown';
    this.opening = null; // the pending `open()`
    this.session = null;
    this.state = null; // the room model, for stream id -> participant
    this.speaking = false;
    /** The server's voice settings from the last `joined`. */
    this.relay = { media: false, iceServers: [] };
    /** The current voice connection: { gen, pc, transceiver, awaitingAnswer, chain, offerSent, queued }. */
    this.voice = null;
    this.generation = 0;
    this.retry = { timer: 0, attempt: 0 };
    /** Remote voices by stream id: { stream, track, el }. */
    this.remotes = new Map();
    /** Per-person playback volume (0..1) by participant id; 1 when not set. */
    this.volumes = new Map();
    this.sink = null; // the hidden element holding the <audio> players
    this.blockedPlayers = new Set(); // players the autoplay policy held back until a click or key
    /** The chosen microphone and speaker (device ids; null: the browser's default). */
    this.micDevice = null;
    this.speakerDevice = null;
    this.onMessage = (ev) => this.onSessionMessage(ev.detail);
    this.onGesture = () => this.resumePlayback();
  }

  /** Opens the microphone. Resolves to true, or false if it was refused or there is none. */
  open() {
    if (this.stream) return Promise.resolve(true);
    this.opening ??= this.openMic().finally(() => (this.opening = null));
    return this.opening;
  }

  async openMic() {
    if (!navigator.mediaDevices?.getUserMedia) {
      this.permission = 'unavailable';
      return false;
    }
    try {
      const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
      if (this.micDevice) audio.deviceId = { exact: this.micDevice };
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
      } catch (e) {
        // The chosen microphone is gone: the default one will do.
        if (!this.micDevice || (e?.name !== 'OverconstrainedError' && e?.name !== 'NotFoundError')) throw e;
        this.micDevice = null;
        delete audio.deviceId;
        stream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
      }
      this.stream = stream;
      this.permission = 'granted';
      // Unplugged (or taken away by the system): say so, and close it, rather than send silence.
      for (const t of stream.getAudioTracks()) {
        t.addEventListener('ended', () => {
          if (this.stream !== stream) return;
          this.close();
          this.dispatchEvent(new CustomEvent('mic-lost'));
        });
      }
      this.startMeter();
      this.syncSender();
      return true;
    } catch (e) {
      this.permission = e?.name === 'NotAllowedError' || e?.name === 'SecurityError' ? 'denied' : 'unavailable';
      return false;
    }
  }

  /** Closes the microphone (and stops sending it). */
  close() {
    this.stopMeter();
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
    this.syncSender();
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

  /** The microphones and speakers this browser offers: `{ inputs, outputs }`, each `[{ id, label }]`. */
  async devices() {
    const list = (await navigator.mediaDevices?.enumerateDevices?.()) ?? [];
    const pick = (kind) =>
      list
        .filter((d) => d.kind === kind && d.deviceId)
        .map((d, i) => ({ id: d.deviceId, label: d.label || t(kind === 'audioinput' ? 'sound.mic_n' : 'sound.speaker_n', { n: i + 1 }) }));
    return { inputs: pick('audioinput'), outputs: canChooseSpeaker() ? pick('audiooutput') : [] };
  }

  /** Uses another microphone; if the microphone is open, it is reopened on the new device. */
  async setMicDevice(id) {
    this.micDevice = id || null;
    if (!this.stream) return true;
    this.close();
    return this.open();
  }

  /** Plays the room through another speaker (where the browser allows choosing one). */
  async setSpeakerDevice(id) {
    this.speakerDevice = id || null;
    await Promise.all([...this.remotes.values()].map((r) => this.routeToSpeaker(r.el)));
  }

  routeToSpeaker(el) {
    if (!canChooseSpeaker()) return Promise.resolve();
    return el.setSinkId(this.speakerDevice ?? '').catch(() => {});
  }

  /** Plays a short, soft chime through the chosen speaker (the test sound, and a new arrival). */
  async chime() {
    const el = new Audio(URL.createObjectURL(toneWav()));
    await this.routeToSpeaker(el);
    try {
      await el.play();
      // A speaker that vanished mid-way may never say the sound ended.
      await new Promise((resolve) => {
        el.addEventListener('ended', resolve, { once: true });
        setTimeout(resolve, CHIME_MAX_MS);
      });
      return true;
    } catch {
      return false;
    } finally {
      URL.revokeObjectURL(el.src);
    }
  }

  /** Whether the autoplay policy holds back the room's voices until a click or key press. */
  get playbackBlocked() {
    return this.blockedPlayers.size > 0;
  }

  /** Follows the server's word on our mute state: a muted participant's microphone is closed. */
  async setMuted(muted) {
    if (muted) {
      this.close();
      return true;
    }
    return this.open();
  }

  // ---- voice ------------------------------------------------------------------------------------

  /**
   * Starts voice for a session that has just been joined (`joined` is the server's `joined`), and
   * follows it: a resume (a new `joined`) starts a fresh connection. `state` is the room model, for
   * telling whose voice a stream is.
   */
  attach(session, joined, state) {
    if (this.session && this.session !== session) this.detach(this.session);
    this.session = session;
    this.state = state ?? null;
    session.addEventListener('message', this.onMessage);
    this.startFromJoined(joined);
  }

  /** Drops the session (if it is still the attached one), closes the voice connection and the microphone. */
  detach(session) {
    if (session && session !== this.session) return;
    this.session?.removeEventListener('message', this.onMessage);
    this.session = null;
    this.state = null;
    this.stopVoice();
    this.close();
  }

  startFromJoined(joined) {
    this.relay = { media: !!joined?.media, iceServers: joined?.ice_servers ?? [] };
    this.retry.attempt = 0;
    if (this.relay.media) this.startVoice();
    else this.stopVoice();
  }

  onSessionMessage(msg) {
    const v = this.voice;
    switch (msg.type) {
      case 'joined':
        // A resume: the server's media session may be gone or stale; every offer starts afresh.
        this.startFromJoined(msg);
        break;
      case 'media_offer':
        // Between our offer and its answer, an offer from the server belongs to the old session.
        if (!v || v.awaitingAnswer) return;
        this.enqueue(v, () => this.answerOffer(v, msg.sdp));
        break;
      case 'media_candidate':
        if (!v || v.awaitingAnswer) return;
        this.enqueue(v, () =>
          v.pc
            .addIceCandidate({
              candidate: msg.candidate.candidate,
              sdpMid: msg.candidate.sdp_mid ?? null,
              sdpMLineIndex: msg.candidate.sdp_mline_index ?? null,
            })
            .catch(() => {}),
        );
        break;
      case 'error':
        // An `error` with no request id about voice: the relay lost this session (PROTOCOL §7.6).
        // Offer a fresh one, with the usual backoff.
        if (v && msg.id === undefined && msg.code === 'media_failed') this.voiceFailed(v, msg);
        break;
      case 'participant_joined':
      case 'participant_updated':
      case 'room_state':
      case 'admitted':
        // A stream may now have a name (and a volume) it did not have.
        this.applyVolumes();
        break;
      default:
        break;
    }
  }

  /** Runs negotiation steps of one connection one after another. */
  enqueue(v, step) {
    v.chain = v.chain.then(() => (this.voice === v ? step() : undefined)).catch((e) => this.voiceFailed(v, e));
    return v.chain;
  }

  /** Closes any connection and offers a new one. */
  startVoice() {
    this.stopVoice();
    const session = this.session;
    if (!session || typeof RTCPeerConnection === 'undefined') return;
    const gen = ++this.generation;
    const pc = new RTCPeerConnection({ iceServers: this.relay.iceServers.map(iceServer) });
    const listenOnly = this.permission === 'denied' || this.permission === 'unavailable';
    const transceiver = pc.addTransceiver('audio', { direction: listenOnly ? 'recvonly' : 'sendrecv' });
    const v = { gen, pc, session, transceiver, awaitingAnswer: true, chain: Promise.resolve(), offerSent: false, queued: [] };
    this.voice = v;
    pc.ontrack = (ev) => {
      if (this.voice === v) this.addRemote(ev);
    };
    pc.onicecandidate = (ev) => {
      if (this.voice !== v || !ev.candidate?.candidate) return;
      const c = ev.candidate;
      if (isMdnsCandidate(c.candidate)) return;
      const candidate = { candidate: c.candidate };
      if (c.sdpMid != null) candidate.sdp_mid = c.sdpMid;
      if (c.sdpMLineIndex != null) candidate.sdp_mline_index = c.sdpMLineIndex;
      if (v.offerSent) this.sendCandidate(v, candidate);
      else v.queued.push(candidate);
    };
    pc.onconnectionstatechange = () => {
      if (this.voice !== v) return;
      if (pc.connectionState === 'connected') this.retry.attempt = 0;
      if (pc.connectionState === 'failed') this.voiceFailed(v, new Error('the voice connection failed'));
      this.dispatchEvent(new CustomEvent('voice', { detail: pc.connectionState }));
    };
    this.enqueue(v, async () => {
      if (!listenOnly) await transceiver.sender.replaceTrack(this.micTrack());
      await pc.setLocalDescription(await pc.createOffer());
      if (this.voice !== v) return;
      const reply = v.session.request('media_offer', { sdp: withoutMdns(pc.localDescription.sdp) });
      v.offerSent = true;
      for (const c of v.queued.splice(0)) this.sendCandidate(v, c);
      let answer;
      try {
        answer = await reply;
      } finally {
        // Server offers from here on are this session's (they are queued behind the answer).
        v.awaitingAnswer = false;
      }
      if (this.voice !== v) return;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    });
  }

  /** Answers the server's renegotiation. */
  async answerOffer(v, sdp) {
    await v.pc.setRemoteDescription({ type: 'offer', sdp });
    await v.pc.setLocalDescription(await v.pc.createAnswer());
    if (this.voice !== v) return;
    await v.session.request('media_answer', { sdp: withoutMdns(v.pc.localDescription.sdp) });
  }

  sendCandidate(v, candidate) {
    // A candidate the server cannot use is of no harm: it is ICE-lite and learns our address from
    // our connectivity checks anyway.
    v.session.request('media_candidate', { candidate }).catch(() => {});
  }

  /** A negotiation step failed or the connection broke: offer again later, unless the socket is down. */
  voiceFailed(v, e) {
    if (this.voice !== v) return;
    // Not connected: the resume's `joined` starts a fresh connection.
    if (e?.code === 'not_connected' || e?.code === 'disconnected') return;
    if (this.retry.timer) return;
    let delay = Math.min(VOICE_RETRY_MAX_MS, VOICE_RETRY_FIRST_MS * 2 ** this.retry.attempt);
    // The server's budget of fresh voice sessions refills one every 6 s (PROTOCOL §7.6).
    if (e?.code === 'rate_limited') delay = Math.max(delay, VOICE_RATE_LIMITED_MS);
    this.retry.attempt += 1;
    this.retry.timer = setTimeout(() => {
      this.retry.timer = 0;
      if (this.voice === v && this.session?.status === 'open') this.startVoice();
    }, delay);
  }

  /** Closes the voice connection and the players. */
  stopVoice() {
    clearTimeout(this.retry.timer);
    this.retry.timer = 0;
    const v = this.voice;
    this.voice = null;
    if (v) {
      v.pc.ontrack = null;
      v.pc.onicecandidate = null;
      v.pc.onconnectionstatechange = null;
      v.pc.close();
    }
    for (const r of this.remotes.values()) this.dropPlayer(r);
    this.remotes.clear();
  }

  micTrack() {
    return this.stream?.getAudioTracks()[0] ?? null;
  }

  /** Puts the open microphone's track on the connection, or takes it off. */
  syncSender() {
    const v = this.voice;
    if (!v || v.pc.signalingState === 'closed') return;
    if (v.transceiver.direction === 'recvonly') {
      // Listen-only, and now there is a microphone: a fresh offer that sends it.
      if (this.stream && this.session?.status === 'open') this.startVoice();
      return;
    }
    v.transceiver.sender.replaceTrack(this.micTrack()).catch(() => {});
  }

  /** Plays a remote voice: one <audio> element per stream (that is, per person). */
  addRemote(ev) {
    const stream = ev.streams[0];
    if (!stream) return;
    let r = this.remotes.get(stream.id);
    if (!r) {
      const el = document.createElement('audio');
      el.autoplay = true;
      el.dataset.stream = stream.id;
      this.playerSink().append(el);
      r = { stream, track: ev.track, el };
      this.remotes.set(stream.id, r);
    }
    r.track = ev.track;
    r.stream = stream;
    if (r.el.srcObject !== stream) r.el.srcObject = stream;
    stream.onremovetrack = () => {
      // The server took this voice away (the person left or reconnected); a new track may follow.
      if (stream.getTracks().length === 0 && this.remotes.get(stream.id) === r) {
        this.dropPlayer(r);
        this.remotes.delete(stream.id);
      }
    };
    r.el.volume = this.volumeFor(stream.id);
    this.routeToSpeaker(r.el);
    this.play(r.el);
  }

  play(el) {
    el.play().catch((e) => {
      if (e?.name !== 'NotAllowedError') return;
      // The autoplay policy wants a gesture first (a resume after reloading the tab): the first
      // click or key press starts the room's voices.
      const first = this.blockedPlayers.size === 0;
      this.blockedPlayers.add(el);
      document.addEventListener('click', this.onGesture, true);
      document.addEventListener('keydown', this.onGesture, true);
      // The room shows a "tap to hear the meeting" prompt.
      if (first) this.dispatchEvent(new CustomEvent('playback', { detail: 'blocked' }));
    });
  }

  resumePlayback() {
    document.removeEventListener('click', this.onGesture, true);
    document.removeEventListener('keydown', this.onGesture, true);
    const held = [...this.blockedPlayers];
    this.blockedPlayers.clear();
    for (const el of held) if (el.isConnected) el.play().catch((e) => e?.name === 'NotAllowedError' && this.play(el));
    this.dispatchEvent(new CustomEvent('playback', { detail: 'playing' }));
  }

  dropPlayer(r) {
    this.blockedPlayers.delete(r.el);
    if (this.blockedPlayers.size === 0) this.dispatchEvent(new CustomEvent('playback', { detail: 'playing' }));
    r.el.pause();
    r.el.srcObject = null;
    r.el.remove();
  }

  playerSink() {
    if (!this.sink?.isConnected) {
      this.sink = document.createElement('div');
      this.sink.hidden = true;
      this.sink.className = 'voice-players';
      document.body.append(this.sink);
    }
    return this.sink;
  }

  /** The participant id whose voice the stream `streamId` carries, or null. */
  participantOf(streamId) {
    for (const p of this.state?.participants.values() ?? []) if (p.stream === streamId) return p.id;
    return null;
  }

  volumeFor(streamId) {
    const who = this.participantOf(streamId);
    return who === null ? 1 : (this.volumes.get(who) ?? 1);
  }

  /** Sets how loud one person plays here (0..1). */
  setVolume(participant, volume) {
    this.volumes.set(participant, Math.max(0, Math.min(1, volume)));
    this.applyVolumes();
  }

  applyVolumes() {
    for (const [id, r] of this.remotes) r.el.volume = this.volumeFor(id);
  }

  /** The voice connection (for diagnostics), or null. */
  get pc() {
    return this.voice?.pc ?? null;
  }

  /**
   * A summary of the voice connection's statistics: what we send, and per remote stream (keyed by
   * stream id, the `stream` of a participant view) what we receive. Null without a connection.
   */
  async stats() {
    const v = this.voice;
    if (!v) return null;
    const report = await v.pc.getStats();
    const inbound = new Map();
    let outbound = null;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') inbound.set(s.trackIdentifier, s);
      if (s.type === 'outbound-rtp' && s.kind === 'audio') outbound = s;
    });
    const streams = {};
    for (const [id, r] of this.remotes) {
      const s = inbound.get(r.track.id);
      streams[id] = {
        participant: this.participantOf(id),
        track: r.track.id,
        packetsReceived: s?.packetsReceived ?? 0,
        bytesReceived: s?.bytesReceived ?? 0,
        totalAudioEnergy: s?.totalAudioEnergy ?? 0,
        audioLevel: s?.audioLevel ?? 0,
        playing: !r.el.paused,
        volume: r.el.volume,
      };
    }
    return {
      generation: v.gen,
      connectionState: v.pc.connectionState,
      signalingState: v.pc.signalingState,
      direction: v.transceiver.direction,
      sending: !!v.transceiver.sender.track,
      packetsSent: outbound?.packetsSent ?? 0,
      streams,
    };
  }
}

/** Whether this browser lets a page choose the speaker (`HTMLMediaElement.setSinkId`). */
export function canChooseSpeaker() {
  return typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
}

/** A short, soft two-note chime as a WAV file (no network, no files to serve). */
function toneWav() {
  const rate = 22050;
  const notes = [
    [660, 0.18],
    [880, 0.28],
  ];
  const total = Math.round(rate * notes.reduce((t, [, d]) => t + d, 0));
  const buf = new DataView(new ArrayBuffer(44 + total * 2));
  const text = (at, s) => [...s].forEach((c, i) => buf.setUint8(at + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  buf.setUint32(4, 36 + total * 2, true);
  text(8, 'WAVEfmt ');
  buf.setUint32(16, 16, true);
  buf.setUint16(20, 1, true); // PCM
  buf.setUint16(22, 1, true); // mono
  buf.setUint32(24, rate, true);
  buf.setUint32(28, rate * 2, true);
  buf.setUint16(32, 2, true);
  buf.setUint16(34, 16, true);
  text(36, 'data');
  buf.setUint32(40, total * 2, true);
  let i = 0;
  for (const [freq, secs] of notes) {
    const n = Math.round(rate * secs);
    for (let k = 0; k < n; k++, i++) {
      // A gentle fade in and out, at a fifth of full scale.
      const env = Math.min(1, k / (rate * 0.02), (n - k) / (rate * 0.08));
      buf.setInt16(44 + i * 2, Math.round(Math.sin((2 * Math.PI * freq * k) / rate) * env * 0.2 * 32767), true);
    }
  }
  return new Blob([buf], { type: 'audio/wav' });
}

/** joined.ice_servers (snake case, as the server sends them) as an RTCIceServer. */
function iceServer(s) {
  const out = { urls: s.urls };
  if (s.username != null) out.username = s.username;
  if (s.credential != null) out.credential = s.credential;
  return out;
}

// A host candidate hidden behind an mDNS name (`….local`) is of no use to the server: it is ICE-lite,
// learns our address from our connectivity checks, and would otherwise ask the local network who
// that name is. Such candidates are neither trickled nor left in the SDPs we send.
function isMdnsCandidate(candidate) {
  return /\.local$/i.test(candidate.replace(/^a=/, '').split(' ')[4] ?? '');
}

function withoutMdns(sdp) {
  return sdp
    .split('\r\n')
    .filter((line) => !(line.startsWith('a=candidate:') && isMdnsCandidate(line)))
    .join('\r\n');
}
