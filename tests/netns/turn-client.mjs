// A minimal TURN client (RFC 8656) over TLS, enough to ask a relay for an allocation and for
// permissions, and to read its answers: what a test needs to check whom a relay agrees to send to.
// STUN messages (RFC 8489) are self-delimiting on a stream (20-byte header + length), so no framing.

import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';

const MAGIC = 0x2112a442;
const METHOD = { allocate: 0x003, send: 0x006, createPermission: 0x008, channelBind: 0x009 };
const INDICATION = 0x0010;
const ATTR = {
  username: 0x0006,
  messageIntegrity: 0x0008,
  errorCode: 0x0009,
  channelNumber: 0x000c,
  xorPeerAddress: 0x0012,
  data: 0x0013,
  realm: 0x0014,
  nonce: 0x0015,
  xorRelayedAddress: 0x0016,
  requestedTransport: 0x0019,
};
const UDP = 17;

function attribute(type, value) {
  const pad = (4 - (value.length % 4)) % 4;
  const head = Buffer.alloc(4);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value, Buffer.alloc(pad)]);
}

function xorAddress(ip, port) {
  const v = Buffer.alloc(8);
  v.writeUInt8(0x01, 1); // IPv4
  v.writeUInt16BE(port ^ (MAGIC >>> 16), 2);
  const octets = ip.split('.').map(Number);
  v.writeUInt32BE((((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) ^ MAGIC) >>> 0, 4);
  return v;
}

function readXorAddress(v) {
  const port = v.readUInt16BE(2) ^ (MAGIC >>> 16);
  const n = (v.readUInt32BE(4) ^ MAGIC) >>> 0;
  return { ip: [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.'), port };
}

/** Encodes a request; with `key`, signs it with MESSAGE-INTEGRITY (HMAC-SHA1). */
function encode(method, txid, attrs, key = null) {
  let body = Buffer.concat(attrs);
  const header = (len) => {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(method, 0); // the class bits: 0 for a request, INDICATION
    h.writeUInt16BE(len, 2);
    h.writeUInt32BE(MAGIC, 4);
    txid.copy(h, 8);
    return h;
  };
  if (key) {
    // The HMAC covers the message with its length already counting the integrity attribute.
    const mac = createHmac('sha1', key).update(Buffer.concat([header(body.length + 24), body])).digest();
    body = Buffer.concat([body, attribute(ATTR.messageIntegrity, mac)]);
  }
  return Buffer.concat([header(body.length), body]);
}

function decode(buf) {
  const type = buf.readUInt16BE(0);
  const attrs = new Map();
  let at = 20;
  const end = 20 + buf.readUInt16BE(2);
  while (at + 4 <= end) {
    const t = buf.readUInt16BE(at);
    const len = buf.readUInt16BE(at + 2);
    attrs.set(t, buf.subarray(at + 4, at + 4 + len));
    at += 4 + len + ((4 - (len % 4)) % 4);
  }
  const cls = ((type & 0x0100) >> 7) | ((type & 0x0010) >> 4);
  const err = attrs.get(ATTR.errorCode);
  return {
    txid: buf.subarray(8, 20),
    ok: cls === 0b10,
    error: err ? { code: (err[2] & 7) * 100 + err[3], reason: err.subarray(4).toString() } : null,
    attrs,
  };
}

/**
 * A TURN client on one TLS connection to `host:port` (trusting the CA file `ca`, checking the
 * certificate for `servername`), with long-term credentials.
 */
export class TurnClient {
  static async connect({ host, port, servername, ca, username, credential }) {
    const socket = connect({ host, port, servername, ca: readFileSync(ca), ALPN: [] });
    await new Promise((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    return new TurnClient(socket, username, credential);
  }

  constructor(socket, username, credential) {
    this.socket = socket;
    this.username = username;
    this.credential = credential;
    this.buffer = Buffer.alloc(0);
    this.waiting = new Map();
    this.realm = null;
    this.nonce = null;
    socket.on('data', (d) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      while (this.buffer.length >= 20) {
        const len = 20 + this.buffer.readUInt16BE(2);
        if (this.buffer.length < len) break;
        const msg = decode(this.buffer.subarray(0, len));
        this.buffer = this.buffer.subarray(len);
        const key = msg.txid.toString('hex');
        this.waiting.get(key)?.(msg);
        this.waiting.delete(key);
      }
    });
  }

  close() {
    this.socket.destroy();
  }

  #send(method, attrs, key) {
    const txid = randomBytes(12);
    const reply = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the TURN server to method ${method}`)), 5_000);
      this.waiting.set(txid.toString('hex'), (m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
    this.socket.write(encode(method, txid, attrs, key));
    return reply;
  }

  /** Sends an authenticated request, learning the realm and nonce from a 401 (or 438) first. */
  async request(method, attrs) {
    for (let attempt = 0; attempt < 3; attempt++) {
      let msg;
      if (this.realm) {
        const key = createHash('md5').update(`${this.username}:${this.realm}:${this.credential}`).digest();
        msg = await this.#send(method, [
          ...attrs,
          attribute(ATTR.username, Buffer.from(this.username)),
          attribute(ATTR.realm, Buffer.from(this.realm)),
          attribute(ATTR.nonce, Buffer.from(this.nonce)),
        ], key);
      } else {
        msg = await this.#send(method, attrs);
      }
      if (msg.error && (msg.error.code === 401 || msg.error.code === 438) && msg.attrs.get(ATTR.nonce)) {
        this.realm = msg.attrs.get(ATTR.realm)?.toString() ?? this.realm;
        this.nonce = msg.attrs.get(ATTR.nonce).toString();
        continue;
      }
      return msg;
    }
    throw new Error('the TURN server kept asking for credentials');
  }

  /** Allocates a UDP relay address; `{ ok, error, relayed }`. */
  async allocate() {
    const msg = await this.request(METHOD.allocate, [attribute(ATTR.requestedTransport, Buffer.from([UDP, 0, 0, 0]))]);
    const relayed = msg.attrs.get(ATTR.xorRelayedAddress);
    return { ok: msg.ok, error: msg.error, relayed: relayed ? readXorAddress(relayed) : null };
  }

  /** Asks for permission to exchange packets with `ip` (port ignored by TURN); `{ ok, error }`. */
  async createPermission(ip, port = 9) {
    const msg = await this.request(METHOD.createPermission, [attribute(ATTR.xorPeerAddress, xorAddress(ip, port))]);
    return { ok: msg.ok, error: msg.error };
  }

  /** A Send indication: asks the relay to send `data` to `ip:port` (no answer comes back). */
  sendIndication(ip, port, data) {
    const txid = randomBytes(12);
    this.socket.write(encode(METHOD.send | INDICATION, txid, [attribute(ATTR.xorPeerAddress, xorAddress(ip, port)), attribute(ATTR.data, data)]));
  }

  /** Asks to bind a channel to `ip:port`; `{ ok, error }`. */
  async channelBind(ip, port, channel = 0x4000) {
    const number = Buffer.alloc(4);
    number.writeUInt16BE(channel, 0);
    const msg = await this.request(METHOD.channelBind, [attribute(ATTR.channelNumber, number), attribute(ATTR.xorPeerAddress, xorAddress(ip, port))]);
    return { ok: msg.ok, error: msg.error };
  }
}
