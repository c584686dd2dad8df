// Connection quality: how well this person's voice connection works, measured by their own browser.
//
// Every few seconds the voice RTCPeerConnection's `getStats()` is read for three things:
//   - loss: the share of packets lost since the last reading, the worse of what reaches us
//     (`inbound-rtp` packetsLost / packetsReceived) and what the server says of ours
//     (`remote-inbound-rtp` fractionLost);
//   - jitter: the largest `jitter` of the voices we receive (and the server's report of ours);
//   - round trip: the nominated `candidate-pair`'s currentRoundTripTime (else `remote-inbound-rtp`).
// Each is classified with the thresholds below, and the level is the worst of the three. The person
// sees the level and the figures; the server is told only the level, and only when it changes, and
// passes it to the facilitators alone (docs/PROTOCOL.md, `connection_quality`).

import { t } from './i18n.js';
import { h } from './views/dom.js';

/** How often the statistics are read. */
export const QUALITY_INTERVAL_MS = 4000;

/**
 * At or above these a connection is fair or poor. Speech stays easy to follow under 2 % loss and
 * 30 ms jitter; from about 8 % loss, 60 ms jitter or a 600 ms round trip, words go missing or
 * people talk over each other.
 */
export const THRESHOLDS = Object.freeze({
  poor: Object.freeze({ loss: 0.08, jitter: 0.06, rtt: 0.6 }),
  fair: Object.freeze({ loss: 0.02, jitter: 0.03, rtt: 0.3 }),
});

/** 'good' | 'fair' | 'poor' for figures in fractions and seconds (null figures count as fine). */
export function classify({ loss, jitter, rtt }) {
  const over = (limits) => (loss ?? 0) >= limits.loss || (jitter ?? 0) >= limits.jitter || (rtt ?? 0) >= limits.rtt;
  if (over(THRESHOLDS.poor)) return 'poor';
  if (over(THRESHOLDS.fair)) return 'fair';
  return 'good';
}

/**
 * Reads the connection given by `getPc()` every QUALITY_INTERVAL_MS. Fires 'sample' (detail: the
 * figures and level) after each reading, and 'change' (detail: the level, or null when there is no
 * connected voice) when the level changes.
 */
export class QualityMonitor extends EventTarget {
  constructor(getPc) {
    super();
    this.getPc = getPc;
    /** The last level: 'good' | 'fair' | 'poor', or null while there is no voice connection. */
    this.level = null;
    /** The last figures: { loss, jitter, rtt } (fractions and seconds; null when unknown). */
    this.figures = null;
    this.timer = 0;
    this.before = null; // the inbound counters of the last reading, for the loss since then
    this.pc = null;
  }

  start() {
    this.stop();
    this.timer = setInterval(() => this.sample(), QUALITY_INTERVAL_MS);
    this.sample();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  async sample() {
    const pc = this.getPc();
    if (pc !== this.pc) {
      this.pc = pc;
      this.before = null; // a new connection's counters start again
    }
    if (!pc || pc.connectionState !== 'connected') {
      this.set(null, null);
      return;
    }
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return; // closed while we asked: the next reading will say
    }
    let lost = 0;
    let received = 0;
    let jitter = null;
    let remoteLoss = null;
    let pairRtt = null;
    let remoteRtt = null;
    report.forEach((s) => {
      if (s.kind && s.kind !== 'audio') return;
      if (s.type === 'inbound-rtp') {
        lost += s.packetsLost ?? 0;
        received += s.packetsReceived ?? 0;
        if (s.jitter != null) jitter = Math.max(jitter ?? 0, s.jitter);
      } else if (s.type === 'remote-inbound-rtp') {
        if (s.fractionLost != null) remoteLoss = Math.max(remoteLoss ?? 0, s.fractionLost);
        if (s.jitter != null) jitter = Math.max(jitter ?? 0, s.jitter);
        if (s.roundTripTime != null) remoteRtt = Math.max(remoteRtt ?? 0, s.roundTripTime);
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        if (s.currentRoundTripTime != null) pairRtt = s.currentRoundTripTime;
      }
    });
    let inboundLoss = null;
    if (this.before) {
      const dLost = Math.max(0, lost - this.before.lost);
      const dReceived = Math.max(0, received - this.before.received);
      if (dLost + dReceived > 0) inboundLoss = dLost / (dLost + dReceived);
    }
    this.before = { lost, received };
    const loss = inboundLoss == null && remoteLoss == null ? null : Math.max(inboundLoss ?? 0, remoteLoss ?? 0);
    const figures = { loss, jitter, rtt: pairRtt ?? remoteRtt };
    this.set(classify(figures), figures);
  }

  set(level, figures) {
    this.figures = figures;
    this.dispatchEvent(new CustomEvent('sample', { detail: { level, figures } }));
    if (level === this.level) return;
    this.level = level;
    this.dispatchEvent(new CustomEvent('change', { detail: level }));
  }
}

/**
 * This person's own indicator, by their controls: the level in words (never colour alone) and,
 * opened, what it is based on and who else learns it. Nothing while there is no voice connection.
 */
export function selfIndicator(monitor) {
  const level = monitor.level;
  if (!level) return null;
  return h(
    'details',
    { class: `quality quality-${level}`, key: 'quality', 'data-level': level },
    h('summary', null, h('span', { class: 'quality-dot', 'aria-hidden': 'true' }), h('span', { class: 'quality-text' }, t(`quality.self.${level}`))),
    h('p', { class: 'quality-figures' }, figuresText(monitor.figures)),
    h('p', { class: 'hint' }, t(`quality.advice.${level}`)),
    h('p', { class: 'hint' }, t('quality.privacy')),
  );
}

/** Updates an indicator drawn by `selfIndicator` in place (the figures change every reading). */
export function paintIndicator(el, monitor) {
  if (!el || !monitor.level) return;
  const figures = el.querySelector('.quality-figures');
  if (figures) figures.textContent = figuresText(monitor.figures);
}

/** A signal-strength drawing with `lit` of its four bars drawn strong (decoration: the words say it). */
function bars(lit) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon quality-bars');
  ['M4 20v-3', 'M9.3 20v-7', 'M14.6 20v-11', 'M20 20V4'].forEach((d, i) => {
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('d', d);
    if (i >= lit) path.setAttribute('class', 'quality-bar-off');
    svg.append(path);
  });
  return svg;
}

function figuresText(figures) {
  const pct = (v) => (v == null ? t('quality.unknown') : `${Math.round(v * 1000) / 10} %`);
  const ms = (v) => (v == null ? t('quality.unknown') : `${Math.round(v * 1000)} ms`);
  return t('quality.figures', { loss: pct(figures?.loss), jitter: ms(figures?.jitter), rtt: ms(figures?.rtt) });
}

/** For facilitators: a badge on the row of someone whose connection is fair or poor, else null. */
export function connectionBadge(level) {
  if (level !== 'fair' && level !== 'poor') return null;
  return h(
    'span',
    { class: `badge badge-connection badge-connection-${level}`, 'data-connection': level },
    bars(level === 'poor' ? 1 : 2),
    t(`quality.row.${level}`),
  );
}
