// Pure encoders and decoders for the two signalling layers the page speaks;
// the WebSocket itself lives elsewhere.
//
// 1. Signalling protocol, version 2 (Go's room/protocol.go): one JSON
//    message per WebSocket text frame between a peer and the server, which
//    only routes. Data (base64 in JSON) is opaque to it: the PAKE frames
//    of cpace.js, then Sealed frames of seal.js.
//
//	sender (host)              server                     receiver
//	  |-- create{v} ------------->|                            |
//	  |<- created{room,peer} -----|                            |
//	  |                           |<------------ join{v,room} -|
//	  |                           |-- joined{room,peer,host} ->|
//	  |                           |<-- relay{to:host,data} ----|  (the receiver
//	  |<- relay{from:rcv,data} ---|                            |   speaks first)
//	  |-- relay{to:rcv,data} ---->|-- relay{from:host,data} -->|
//	  |            ... PAKE, then sealed offer/answer/candidates ...
//	  |<- left{peer} -------------|<------------------- (close)|
//
//    plus the seed pool: seed{slots,complete}, want{count}, peers{peers},
//    release{peer}, queued{position,sources}, fail, and error{code,text}.
//    "relay" carries its other end in "peer" both ways.
//
// 2. Sealed signalling, version 6 (Go's peer/lane/wire.go): the JSON inside
//    each Sealed frame once the PAKE is done: {v:6, t:offer|answer|cand|
//    bye|lanes|direct|punched, ...}. A browser has one peer connection and
//    no direct lanes: it offers lanes:1 and, after the accepter's first
//    data-channel message, sends {t:"lanes", lanes:1}. It never says
//    rides:true (it cannot take a ride lane), so no CLI asks it for one.
//
// Decoders check everything Go's Validate and decodeSignal check, since a
// server or a password holder may be hostile.

import { fromBase64, toBase64, utf8, wellFormed } from './bytes.js';

/** Signalling protocol version carried in create and join. */
export const PROTOCOL_VERSION = 2;
/** Bound on one signalling frame, in bytes. */
export const MAX_MESSAGE_SIZE = 64 << 10;
/** Bound on a message's data, in bytes before base64. */
export const MAX_DATA_SIZE = 32 << 10;

// Room IDs, peer IDs and generated passwords draw from an alphabet without
// look-alikes (0/o, 1/l/i), so an ID read aloud is typed right.
export const ALPHABET = '23456789abcdefghjkmnpqrstuvwxyz';
export const ROOM_ID_LEN = 8;
export const PEER_ID_LEN = 12;
export const PASSWORD_GROUP = 5;

// Field limits of the seed pool and ice, as Go's room package has them.
export const MAX_SLOTS = 64;
export const MAX_WANT = 16;
export const KEY_SIZE = 32;
export const MAX_FAILURES = 1000;
export const MAX_SOURCES = 1 << 20;
export const MAX_ICE_SERVERS = 4;
const MAX_ICE_URLS = 4;
const MAX_ICE_FIELD = 256;
const MAX_TEXT = 512;

/**
 * Error codes the server sends, with the plain words the page can show.
 * Only peer_gone and not_allowed answer one message; the others end the
 * connection (Go's Code.Fatal).
 */
export const CODES = Object.freeze({
  bad_message: 'malformed signalling message',
  too_large: 'signalling message too large',
  version: 'this page and the signalling server speak different protocol versions',
  room_not_found: 'room not found (mistyped, or expired)',
  room_closed: 'the room was closed by its sender',
  rate_limited: 'too many attempts from this address; try again later',
  server_full: 'the signalling server is full; try again later',
  not_allowed: 'not allowed by the signalling server',
  peer_gone: 'the other side left',
  too_many_failures: 'the room was closed after too many wrong passwords',
  internal: 'the signalling server failed',
});

/** Whether an error with this code ends the signalling connection. */
export function codeFatal(code) {
  return code !== 'peer_gone' && code !== 'not_allowed';
}

/** A message the page must refuse: code is 'bad_message' or 'too_large'. */
export class SignalError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'SignalError';
    this.code = code;
  }
}

function inAlphabet(s) {
  for (let i = 0; i < s.length; i++) if (!ALPHABET.includes(s[i])) return false;
  return true;
}

/** Whether s has the form of a room ID. */
export function validRoomID(s) {
  return typeof s === 'string' && s.length === ROOM_ID_LEN && inAlphabet(s);
}

/** Whether s has the form of a peer ID. */
export function validPeerID(s) {
  return typeof s === 'string' && s.length === PEER_ID_LEN && inAlphabet(s);
}

/** Forgives what people do when typing an ID: surrounding spaces and capitals. */
export function normalizeRoomID(s) {
  return s.trim().toLowerCase();
}

function randomString(n, random) {
  const limit = 256 - (256 % ALPHABET.length); // rejection sampling: no character likelier
  let out = '';
  while (out.length < n) {
    for (const c of random(2 * n)) if (c < limit && out.length < n) out += ALPHABET[c % ALPHABET.length];
  }
  return out;
}

/**
 * A fresh password for a page that sends, as the CLI makes them: two
 * groups of five from ALPHABET, e.g. "k7m2x-pq9fd" (about 49.5 bits, which
 * CPace makes an online-only guess).
 */
export function newPassword(random = defaultRandom) {
  return `${randomString(PASSWORD_GROUP, random)}-${randomString(PASSWORD_GROUP, random)}`;
}

function defaultRandom(n) {
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return b;
}

// Fields in Go's struct order, so encodings match json.Marshal byte for byte.
const FIELDS = [
  ['type', 'string'], ['v', 'int'], ['room', 'string'], ['peer', 'string'], ['host', 'string'],
  ['data', 'bytes'], ['code', 'string'], ['text', 'string'], ['slots', 'int'], ['complete', 'bool'],
  ['count', 'int'], ['peers', 'strings'], ['position', 'int'], ['sources', 'int'], ['key', 'bytes'],
  ['max_failures', 'int'], ['ice', 'ice'],
];

const TYPES = ['create', 'join', 'relay', 'close', 'leave', 'seed', 'want', 'release', 'fail',
  'created', 'joined', 'left', 'error', 'peers', 'queued'];

const badMsg = (msg) => new SignalError('bad_message', `malformed signalling message: ${msg}`);

function validICE(s) {
  if (typeof s !== 'object' || s === null || !Array.isArray(s.urls)) return false;
  const user = s.username ?? '';
  const cred = s.credential ?? '';
  if (typeof user !== 'string' || typeof cred !== 'string') return false;
  if (s.urls.length === 0 || s.urls.length > MAX_ICE_URLS || utf8(user).length > MAX_ICE_FIELD || utf8(cred).length > MAX_ICE_FIELD) return false;
  return s.urls.every((u) => {
    if (typeof u !== 'string') return false;
    const i = u.indexOf(':');
    return i >= 0 && i < u.length - 1 && utf8(u).length <= MAX_ICE_FIELD && ['stun', 'stuns', 'turn', 'turns'].includes(u.slice(0, i));
  });
}

/**
 * Checks that m carries what its type needs and nothing malformed (Go's
 * Message.Validate). m uses the JSON field names with data and key as
 * Uint8Array; absent fields are undefined. Throws SignalError.
 */
export function validateMessage(m) {
  const data = m.data ?? new Uint8Array(0);
  const num = (k) => m[k] ?? 0;
  if (data.length > MAX_DATA_SIZE) throw new SignalError('too_large', `signalling message too large: data of ${data.length} bytes`);
  if (utf8(m.text ?? '').length > MAX_TEXT) throw badMsg('text too long');
  if ((m.room ?? '') !== '' && !validRoomID(m.room)) throw badMsg('malformed room ID');
  for (const p of [m.peer, m.host]) if ((p ?? '') !== '' && !validPeerID(p)) throw badMsg('malformed peer ID');
  const peers = m.peers ?? [];
  if (peers.length > MAX_WANT) throw badMsg(`${peers.length} peers`);
  if (!peers.every(validPeerID)) throw badMsg('malformed peer ID');
  if (m.key !== undefined && m.key !== null && m.key.length !== KEY_SIZE) throw badMsg(`key of ${m.key.length} bytes`);
  const sources = num('sources');
  if (num('slots') < 0 || num('slots') > MAX_SLOTS || num('count') < 0 || num('count') > MAX_WANT || num('position') < 0 ||
    sources < 0 || sources > MAX_SOURCES || (sources > 0 && m.type !== 'queued') ||
    num('max_failures') < 0 || num('max_failures') > MAX_FAILURES) {
    throw badMsg('field out of range');
  }
  const ice = m.ice ?? [];
  if (ice.length > MAX_ICE_SERVERS || (ice.length > 0 && m.type !== 'created' && m.type !== 'joined')) throw badMsg('ice servers out of place or too many');
  if (!ice.every(validICE)) throw badMsg('malformed ice server');
  if ((m.code ?? '') !== '' && !(m.code in CODES)) throw badMsg(`unknown code ${JSON.stringify(m.code)}`);
  const need = (ok, what) => {
    if (!ok) throw badMsg(`${m.type} without ${what}`);
  };
  const has = (k) => (m[k] ?? '') !== '';
  switch (m.type) {
    case 'create': return need(num('v') !== 0, 'version');
    case 'join': need(num('v') !== 0, 'version'); return need(has('room'), 'room');
    case 'relay': need(has('peer'), 'peer'); return need(data.length > 0, 'data');
    case 'close': case 'fail': return undefined;
    case 'seed': return need(num('slots') > 0, 'slots');
    case 'want': return need(num('count') > 0, 'count');
    case 'release': case 'leave': case 'left': return need(has('peer'), 'peer');
    case 'peers': return need(peers.length > 0, 'peers');
    case 'queued': return need(num('position') > 0, 'position');
    case 'created': need(has('room'), 'room'); return need(has('peer'), 'peer');
    case 'joined': need(has('room') && has('peer'), 'room and peer'); return need(has('host'), 'host');
    case 'error': return need(has('code'), 'code');
  }
  throw badMsg(`unknown type ${JSON.stringify(m.type)}`);
}

function isEmpty(kind, v) {
  if (v === undefined || v === null) return true;
  switch (kind) {
    case 'string': return v === '';
    case 'int': return v === 0;
    case 'bool': return v === false;
    default: return v.length === 0; // omitempty: empty slices are left out
  }
}

/**
 * The wire form (a string for a WebSocket text frame) of m after checking
 * it. Fields are written in Go's order with Go's omitempty rules.
 */
export function encodeMessage(m) {
  validateMessage(m);
  const out = [];
  for (const [k, kind] of FIELDS) {
    const v = m[k];
    if (isEmpty(kind, v)) continue;
    let s;
    if (kind === 'bytes') s = `"${toBase64(v)}"`;
    else if (kind === 'ice') {
      s = `[${v.map((x) => {
        let e = `{"urls":${goJSON(x.urls)}`;
        if (x.username) e += `,"username":${goJSON(x.username)}`;
        if (x.credential) e += `,"credential":${goJSON(x.credential)}`;
        return `${e}}`;
      }).join(',')}]`;
    } else s = goJSON(v);
    out.push(`${JSON.stringify(k)}:${s}`);
  }
  const text = `{${out.join(',')}}`;
  if (utf8(text).length > MAX_MESSAGE_SIZE) throw new SignalError('too_large', 'signalling message too large');
  return text;
}

// JSON as Go's encoding/json writes it: <, >, & and the line separators escaped.
function goJSON(v) {
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function typed(kind, v) {
  switch (kind) {
    case 'string': return typeof v === 'string';
    case 'int': return Number.isSafeInteger(v);
    case 'bool': return typeof v === 'boolean';
    case 'strings': return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'bytes': return typeof v === 'string';
    case 'ice': return Array.isArray(v);
  }
  return false;
}

/**
 * Parses and checks one frame from the server (a string, or its UTF-8
 * bytes). Unknown fields are ignored, as Go ignores them, so a newer server
 * can add some. Returns the message with data and key as Uint8Array;
 * throws SignalError.
 */
export function decodeMessage(frame) {
  const size = typeof frame === 'string' ? utf8(frame).length : frame.length;
  if (size > MAX_MESSAGE_SIZE) throw new SignalError('too_large', `signalling message too large: ${size} bytes`);
  const text = typeof frame === 'string' ? frame : new TextDecoder().decode(frame);
  let w;
  try {
    w = JSON.parse(text);
  } catch (e) {
    throw badMsg(e.message);
  }
  if (typeof w !== 'object' || w === null || Array.isArray(w)) throw badMsg('not an object');
  const m = {};
  for (const [k, kind] of FIELDS) {
    if (!(k in w) || w[k] === null) continue;
    if (!typed(kind, w[k])) throw badMsg(`field ${k}`);
    if (kind === 'bytes') {
      const b = fromBase64(w[k]);
      if (b === null) throw badMsg(`field ${k} is not base64`);
      m[k] = b;
    } else m[k] = w[k];
  }
  if (m.type === undefined) m.type = '';
  if (!TYPES.includes(m.type)) throw badMsg(`unknown type ${JSON.stringify(m.type)}`);
  validateMessage(m);
  return m;
}

// --- sealed signalling (inside Sealed frames) --------------------------

/** Sealed signalling version; any other ends the connection. */
export const SIGNAL_VERSION = 6;
/** Bound on the connections one dialer opens to one accepter. */
export const MAX_LANES = 4;
const MAX_WHY = 256;
const MAX_INFO = 64;
const SIG_TYPES = ['offer', 'answer', 'cand', 'bye', 'lanes', 'direct', 'punched'];
/** The bye reason when ICE found no path in time. */
export const WHY_NO_PATH = 'no path';

const protoErr = (msg) => new SignalError('bad_message', `protocol error: ${msg}`);

function validAddrPort(s) {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9A-Fa-f:.]+(?:%[^\]]+)?)\]):(\d{1,5})$/.exec(s);
  if (!m) return false;
  const port = Number(m[3]);
  if (port === 0 || port > 65535 || (m[3].length > 1 && m[3][0] === '0')) return false;
  if (m[1]) return m[1].split('.').every((x) => Number(x) <= 255 && (x.length === 1 || x[0] !== '0'));
  return m[2].includes(':');
}

/**
 * Checks and decodes one opened Sealed frame's plaintext (Go's
 * decodeSignal): it comes from the other password holder, who may still be
 * hostile. info and direct.fp come back as Uint8Array. A message of another
 * version throws a SignalError with code 'version'.
 */
export function decodeSignal(b) {
  let w;
  try {
    w = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b));
  } catch (e) {
    throw protoErr(`sealed signalling: ${e.message}`);
  }
  if (typeof w !== 'object' || w === null || Array.isArray(w)) throw protoErr('sealed signalling: not an object');
  if (w.v !== SIGNAL_VERSION) {
    throw new SignalError('version', `sealed signalling version ${w.v ?? 0}, this end speaks ${SIGNAL_VERSION}: both sides need the same p2pxfer version`);
  }
  const str = (k) => {
    if (w[k] === undefined || w[k] === null) return '';
    if (typeof w[k] !== 'string') throw protoErr(`sealed signalling: ${k}`);
    return w[k];
  };
  const m = { v: w.v, t: str('t'), sdp: str('sdp'), why: str('why'), to: str('to'), lanes: 0, cand: null, info: null, direct: null };
  if (w.lanes !== undefined && w.lanes !== null) {
    if (!Number.isSafeInteger(w.lanes)) throw protoErr('sealed signalling: lanes');
    m.lanes = w.lanes;
  }
  if (w.cand !== undefined && w.cand !== null) {
    const c = w.cand;
    if (typeof c !== 'object' || Array.isArray(c) || typeof (c.candidate ?? '') !== 'string' ||
      (c.sdpMid != null && typeof c.sdpMid !== 'string') ||
      (c.sdpMLineIndex != null && !(Number.isInteger(c.sdpMLineIndex) && c.sdpMLineIndex >= 0 && c.sdpMLineIndex <= 65535))) {
      throw protoErr('sealed signalling: cand');
    }
    m.cand = { candidate: c.candidate ?? '' };
    if (c.sdpMid != null) m.cand.sdpMid = c.sdpMid;
    if (c.sdpMLineIndex != null) m.cand.sdpMLineIndex = c.sdpMLineIndex;
  }
  if (w.info !== undefined && w.info !== null) {
    if (typeof w.info !== 'string' || (m.info = fromBase64(w.info)) === null) throw protoErr('sealed signalling: info');
  }
  if (w.direct !== undefined && w.direct !== null) {
    const d = w.direct;
    const port = (p) => Number.isInteger(p) && p >= 0 && p <= 65535;
    const fp = typeof d?.fp === 'string' ? fromBase64(d.fp) : d?.fp == null ? new Uint8Array(0) : null;
    const more = d?.more ?? [];
    if (typeof d !== 'object' || !port(d.port ?? 0) || fp === null || !Array.isArray(more) || !more.every(port)) {
      throw protoErr('sealed signalling: direct');
    }
    m.direct = { port: d.port ?? 0, fp, more };
  }
  switch (m.t) {
    case 'offer': case 'answer':
      if (m.sdp === '') throw protoErr(`${m.t} without sdp`);
      break;
    case 'cand':
      if (m.cand === null) throw protoErr('candidate message without candidate');
      break;
    case 'bye':
      break;
    case 'punched':
      if (!validAddrPort(m.to)) throw protoErr('punched without its address');
      break;
    case 'lanes':
      if (m.lanes === 0) throw protoErr('lanes message without a count');
      break;
    case 'direct':
      if (m.direct === null) throw protoErr('direct message without its end');
      break;
    default:
      throw protoErr(`unknown sealed signalling type ${JSON.stringify(m.t)}`);
  }
  if (m.info !== null && (m.t !== 'answer' || m.info.length > MAX_INFO)) throw protoErr('malformed info');
  if (m.lanes !== 0 && ((m.t !== 'offer' && m.t !== 'answer' && m.t !== 'lanes') || m.lanes < 1 || m.lanes > MAX_LANES)) {
    throw protoErr('malformed lane count');
  }
  if (m.direct !== null) {
    const d = m.direct;
    const ports = [d.port, ...d.more];
    if ((m.t !== 'direct' && (m.t !== 'lanes' || m.lanes !== 2 + d.more.length)) || d.more.length > MAX_LANES - 2 ||
      ports.includes(0) || d.fp.length !== 32) {
      throw protoErr('malformed direct lane');
    }
  }
  if (m.to !== '' && m.t !== 'punched') throw protoErr('malformed to');
  if (utf8(m.why).length > MAX_WHY || !wellFormed(m.why)) throw protoErr('malformed reason');
  if (!SIG_TYPES.includes(m.t)) throw protoErr('unknown type');
  return m;
}

/**
 * The plaintext for one sealed signalling message, to pass to
 * Session.seal: m = {t, sdp?, cand?, why?, info?, lanes?}; v is set here.
 * Fields follow Go's order and omitempty rules.
 */
export function encodeSignal(m) {
  if (!SIG_TYPES.includes(m.t)) throw new TypeError(`unknown sealed signalling type ${m.t}`);
  const parts = [`"v":${SIGNAL_VERSION}`, `"t":${goJSON(m.t)}`];
  if (m.sdp) parts.push(`"sdp":${goJSON(m.sdp)}`);
  if (m.cand) {
    let c = `{"candidate":${goJSON(m.cand.candidate ?? '')}`;
    if (m.cand.sdpMid != null) c += `,"sdpMid":${goJSON(m.cand.sdpMid)}`;
    if (m.cand.sdpMLineIndex != null) c += `,"sdpMLineIndex":${m.cand.sdpMLineIndex}`;
    parts.push(`"cand":${c}}`);
  }
  if (m.why) parts.push(`"why":${goJSON(m.why)}`);
  if (m.info && m.info.length > 0) parts.push(`"info":"${toBase64(m.info)}"`);
  if (m.lanes) parts.push(`"lanes":${m.lanes}`);
  if (m.to) parts.push(`"to":${goJSON(m.to)}`);
  return utf8(`{${parts.join(',')}}`);
}
