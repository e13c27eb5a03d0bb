// CPace (draft-irtf-cfrg-cpace) over ristretto255 with SHA-512, exactly as
// Go's pake package runs it (pake/cpace.go, handshake.go), so a browser tab
// and the CLI authenticate each other with the room password without the
// password or any key reaching the signalling server.
//
//	receiver (initiator)                          sender (responder)
//	{initiator, hello} = startInitiator(pw, p) --> {responder, reply} = respond(pw, p, hello)
//	{session, confirm} = initiator.finish(reply) <--
//	                                           --> session = responder.finish(confirm)
//	session.seal / session.open                <-> session.seal / session.open
//
// The browser is the initiator when it receives and the responder when it
// sends (or seeds). Each Initiator and Responder is single-use, even after
// an error, so one handshake is one password guess. On a local failure
// send abortFrame(abortReason(err)) so the peer learns quickly; a source
// that sees a wrong password also sends the server {type: "fail"}. While
// waiting for a handshake frame, pass over Sealed frames (frameKind): they
// belong to an earlier session with the same peer, as Go's
// link.recvHandshake does. Frames travel as the data of relay messages
// (signal.js), which name the other end.
//
// Key schedule (identical to Go's): the generator is ristretto255's RFC 9496
// one-way map (noble's deriveToCurve, Go's FromUniformBytes; not RFC 9380
// hash_to_curve) of SHA-512(lv_cat(DSI, PRS, zpad, CI, sid)); ISK =
// SHA-512(lv_cat(DSI_ISK, sid, K) || lv_cat(Ya, ADa) || lv_cat(Yb, ADb));
// HKDF-SHA512(ISK, no salt) expands four 32-byte keys: the two confirmation
// MAC keys (HMAC-SHA256 over the transcript) and the two sealing keys.
//
// Scalar multiplication is noble's constant-time ladder. JavaScript cannot
// promise to erase BigInt scalars; byte arrays holding secrets are zeroed
// when done, which is the best a page can do.

import { ristretto255, ristretto255_hasher, sha512, sha256, hmac, hkdfExtract, hkdfExpand, bytesToNumberLE } from '../vendor/noble.js';
import { concat, equalCT, randomBytes, utf8 } from './bytes.js';
import { Session } from './seal.js';
import {
  PAKE_VERSION, KIND_HELLO, KIND_REPLY, KIND_CONFIRM, SID_LEN, POINT_LEN, HELLO_LEN, REPLY_LEN, CONFIRM_LEN,
  PakeError, abortErrorIfAbort,
} from './pakewire.js';

export * from './pakewire.js';

const Point = ristretto255.Point;
const Fn = Point.Fn;

const DSI = utf8('CPaceRistretto255');
const DSI_ISK = utf8('CPaceRistretto255_ISK');
const S_IN_BYTES = 128; // SHA-512's block: the password fills the first one
const AD_INITIATOR = utf8('p2pxfer initiator');
const AD_RESPONDER = utf8('p2pxfer responder');
const INFO_CONFIRM_I = utf8('p2pxfer v1 confirm initiator');
const INFO_CONFIRM_R = utf8('p2pxfer v1 confirm responder');
const INFO_SEAL_IR = utf8('p2pxfer v1 seal initiator->responder');
const INFO_SEAL_RI = utf8('p2pxfer v1 seal responder->initiator');

function leb128(n) {
  const out = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/**
 * The draft's lv_cat: each part prefixed with its LEB128 length, so no two
 * different tuples encode alike. Exported for the draft's test vectors.
 */
export function lvCat(...parts) {
  const out = [];
  for (const p of parts) out.push(leb128(p.length), p);
  return concat(...out);
}

/** lv_cat(DSI, PRS, zero_bytes(ZPAD), CI, sid); exported for the vectors. */
export function generatorString(prs, ci, sid) {
  const zpad = Math.max(0, S_IN_BYTES - (leb128(prs.length).length + prs.length) - (leb128(DSI.length).length + DSI.length) - 1);
  return lvCat(DSI, prs, new Uint8Array(zpad), ci, sid);
}

/**
 * The password-derived generator: nobody knows its discrete log, which is
 * what makes a guess cost one protocol run. Exported for the vectors.
 */
export function calculateGenerator(prs, ci, sid) {
  const gs = generatorString(prs, ci, sid);
  const h = sha512(gs);
  gs.fill(0);
  const g = ristretto255_hasher.deriveToCurve(h);
  h.fill(0);
  return g;
}

/**
 * A scalar from 64 uniform bytes, reduced mod the group order (Go's
 * Scalar.FromUniformBytes). Zero, with probability 2^-252, is refused
 * rather than sent as the identity.
 */
export function scalarFromUniform(b) {
  if (b.length !== 64) throw new TypeError('scalar needs 64 bytes');
  const y = Fn.create(bytesToNumberLE(b));
  if (y === 0n) throw new PakeError('bad_point', 'zero scalar');
  return y;
}

/**
 * K = y·Y for the peer's share Y, refusing anything that is not a canonical
 * ristretto255 encoding and a K that is the identity (which only the
 * identity as Y can cause, and would fix K without the password). Returns
 * K's encoding.
 */
export function scalarMultVfy(y, peer) {
  if (peer.length !== POINT_LEN) throw new PakeError('bad_point', 'invalid CPace share');
  let Y;
  try {
    Y = Point.fromBytes(peer);
  } catch {
    throw new PakeError('bad_point', 'invalid CPace share');
  }
  const k = Y.multiply(y).toBytes();
  let z = 0;
  for (const x of k) z |= x;
  if (z === 0) throw new PakeError('bad_point', 'invalid CPace share');
  return k;
}

/** Initiator/responder-ordered transcript lv_cat(Ya, ADa) || lv_cat(Yb, ADb). */
export function transcriptIR(ya, ada, yb, adb) {
  return concat(lvCat(ya, ada), lvCat(yb, adb));
}

/** The draft's symmetric transcript; unused by p2pxfer, kept for its vectors. */
export function transcriptOC(ya, ada, yb, adb) {
  let a = lvCat(ya, ada);
  let b = lvCat(yb, adb);
  if (compareBytes(a, b) < 0) [a, b] = [b, a];
  return concat(utf8('oc'), a, b);
}

function compareBytes(a, b) {
  for (let i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** ISK = SHA-512(lv_cat(DSI_ISK, sid, K) || transcript). */
export function deriveISK(sid, k, transcript) {
  const pre = lvCat(DSI_ISK, sid, k);
  const isk = sha512.create().update(pre).update(transcript).digest();
  pre.fill(0);
  return isk;
}

/** CI = lv_cat("p2pxfer", version, room, initiator, responder). */
export function channelID(params) {
  return lvCat(utf8('p2pxfer'), Uint8Array.of(PAKE_VERSION), utf8(params.room), utf8(params.initiator), utf8(params.responder));
}

function deriveKeys(isk) {
  const prk = hkdfExtract(sha512, isk);
  const k = {
    confI: hkdfExpand(sha512, prk, INFO_CONFIRM_I, 32),
    confR: hkdfExpand(sha512, prk, INFO_CONFIRM_R, 32),
    sealIR: hkdfExpand(sha512, prk, INFO_SEAL_IR, 32),
    sealRI: hkdfExpand(sha512, prk, INFO_SEAL_RI, 32),
  };
  prk.fill(0);
  return k;
}

function wipeKeys(k) {
  for (const v of Object.values(k)) v.fill(0);
}

function mac(key, transcript) {
  return hmac(sha256, key, transcript);
}

function sharedKeys(y, peerShare, sid, ya, yb) {
  const k = scalarMultVfy(y, peerShare);
  const transcript = transcriptIR(ya, AD_INITIATOR, yb, AD_RESPONDER);
  const isk = deriveISK(sid, k, transcript);
  k.fill(0);
  const keys = deriveKeys(isk);
  isk.fill(0);
  return { transcript, keys };
}

function checkParams(password, params) {
  if (typeof password !== 'string' || password === '') throw new PakeError('empty_password', 'empty password');
  for (const f of ['room', 'initiator', 'responder']) {
    if (typeof params?.[f] !== 'string') throw new TypeError(`params.${f} must be a string`);
  }
}

/**
 * The receiver's half-finished handshake, between sending Hello and
 * receiving Reply. Single-use.
 */
export class Initiator {
  #y;
  #sid;
  #ya;
  #done = false;

  constructor(y, sid, ya) {
    this.#y = y;
    this.#sid = sid;
    this.#ya = ya;
  }

  /**
   * Processes the responder's Reply. If its MAC verifies, returns the
   * Session and the Confirm frame to send. Throws PakeError
   * 'wrong_password' if not (send abortFrame(ABORT_WRONG_PASSWORD)), the
   * peer's abort error if reply is an Abort frame, 'bad_frame' or
   * 'bad_point' if it is malformed, 'finished' on a second call.
   * @returns {{session: Session, confirm: Uint8Array}}
   */
  finish(reply) {
    if (this.#done) throw new PakeError('finished', 'pake initiator finish: handshake already finished');
    this.#done = true;
    const y = this.#y;
    this.#y = 0n;
    try {
      abortErrorIfAbort(reply, 'pake initiator finish');
      if (reply.length !== REPLY_LEN || reply[0] !== KIND_REPLY) {
        throw new PakeError('bad_frame', 'pake initiator finish: malformed handshake frame');
      }
      const yb = reply.subarray(1, 1 + POINT_LEN);
      const macB = reply.subarray(1 + POINT_LEN);
      const { transcript, keys } = sharedKeys(y, yb, this.#sid, this.#ya, yb);
      try {
        if (!equalCT(macB, mac(keys.confR, transcript))) {
          throw new PakeError('wrong_password', 'pake initiator finish: wrong password');
        }
        const session = new Session(true, keys.sealIR, keys.sealRI);
        const confirm = concat(Uint8Array.of(KIND_CONFIRM), mac(keys.confI, transcript));
        return { session, confirm };
      } finally {
        wipeKeys(keys);
      }
    } catch (e) {
      if (e instanceof PakeError && !e.message.startsWith('pake')) e.message = `pake initiator finish: ${e.message}`;
      throw e;
    }
  }
}

/**
 * Starts a handshake as the initiator (the receiver) and returns the Hello
 * frame to send. params are {room, initiator, responder}: the room ID, our
 * own peer ID and the host's, bound into CPace's channel identifier so a
 * handshake cannot be replayed into another room or between other peers.
 * random(n) returns n random bytes; leave it out (tests pass a fixed one).
 * @returns {{initiator: Initiator, hello: Uint8Array}}
 */
export function startInitiator(password, params, random = randomBytes) {
  checkParams(password, params);
  const sid = Uint8Array.from(random(SID_LEN));
  const yb = random(64);
  const y = scalarFromUniform(yb);
  yb.fill(0);
  const prs = utf8(password);
  const g = calculateGenerator(prs, channelID(params), sid);
  prs.fill(0);
  const ya = g.multiply(y).toBytes();
  const hello = concat(Uint8Array.of(KIND_HELLO, PAKE_VERSION), sid, ya);
  return { initiator: new Initiator(y, sid, ya), hello };
}

/**
 * The sender's half-finished handshake, between sending Reply and
 * receiving Confirm. Single-use.
 */
export class Responder {
  #transcript;
  #confI;
  #sealIR;
  #sealRI;
  #done = false;

  constructor(transcript, confI, sealIR, sealRI) {
    this.#transcript = transcript;
    this.#confI = confI;
    this.#sealIR = sealIR;
    this.#sealRI = sealRI;
  }

  /**
   * Processes the initiator's Confirm and returns the Session. Throws
   * PakeError 'wrong_password' if its MAC does not verify, the peer's
   * abort error if confirm is an Abort frame (how a wrong password is
   * normally reported: the initiator notices first), 'bad_frame' if
   * malformed, 'finished' on a second call.
   * @returns {Session}
   */
  finish(confirm) {
    if (this.#done) throw new PakeError('finished', 'pake responder finish: handshake already finished');
    this.#done = true;
    try {
      abortErrorIfAbort(confirm, 'pake responder finish');
      if (confirm.length !== CONFIRM_LEN || confirm[0] !== KIND_CONFIRM) {
        throw new PakeError('bad_frame', 'pake responder finish: malformed handshake frame');
      }
      if (!equalCT(confirm.subarray(1), mac(this.#confI, this.#transcript))) {
        throw new PakeError('wrong_password', 'pake responder finish: wrong password');
      }
      return new Session(false, this.#sealRI, this.#sealIR);
    } finally {
      this.wipe();
    }
  }

  /**
   * Overwrites the keys of a handshake that will not finish (the
   * initiator left, or timed out); finish throws 'finished' afterwards.
   */
  wipe() {
    this.#done = true;
    this.#confI.fill(0);
    this.#sealIR.fill(0);
    this.#sealRI.fill(0);
  }
}

/**
 * Answers the initiator's Hello as the responder (the sender or a seed) and
 * returns the Reply frame to send. Throws PakeError 'version' if the Hello
 * is of another version (send abortFrame(ABORT_VERSION)), 'bad_frame' or
 * 'bad_point' if malformed, the peer's abort error for an Abort frame.
 * params and random are as for startInitiator, with our own ID as
 * responder.
 * @returns {{responder: Responder, reply: Uint8Array}}
 */
export function respond(password, params, hello, random = randomBytes) {
  checkParams(password, params);
  abortErrorIfAbort(hello, 'pake respond');
  if (hello.length < 2 || hello[0] !== KIND_HELLO) throw new PakeError('bad_frame', 'pake respond: malformed handshake frame');
  if (hello[1] !== PAKE_VERSION) throw new PakeError('version', 'pake respond: unsupported handshake version');
  if (hello.length !== HELLO_LEN) throw new PakeError('bad_frame', 'pake respond: malformed handshake frame');
  const sid = hello.slice(2, 2 + SID_LEN);
  const ya = hello.slice(2 + SID_LEN);
  const rb = random(64);
  const y = scalarFromUniform(rb);
  rb.fill(0);
  const prs = utf8(password);
  const g = calculateGenerator(prs, channelID(params), sid);
  prs.fill(0);
  const yb = g.multiply(y).toBytes();
  let shared;
  try {
    shared = sharedKeys(y, ya, sid, ya, yb);
  } catch (e) {
    if (e instanceof PakeError) e.message = `pake respond: ${e.message}`;
    throw e;
  }
  const { transcript, keys } = shared;
  const macB = mac(keys.confR, transcript);
  keys.confR.fill(0);
  const reply = concat(Uint8Array.of(KIND_REPLY), yb, macB);
  return { responder: new Responder(transcript, keys.confI, keys.sealIR, keys.sealRI), reply };
}
