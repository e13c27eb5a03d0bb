// Sealed signalling frames: the page's side of Go's pake.Session
// (pake/session.go, frame layout in pake/wire.go).
//
// After the CPace handshake every SDP offer/answer and ICE candidate goes
// through the signalling server as a Sealed frame:
//
//	[4][seq:8 big-endian][ChaCha20-Poly1305 ciphertext and tag]
//
// One key and one sequence number per direction; the sequence number is
// the nonce (4 zero bytes, then seq big-endian) and the 9-byte header is
// the associated data, so the relay can drop frames but cannot replay,
// reorder, or move them to the other direction. The plaintext is at most
// MAX_PLAINTEXT bytes. A failed open changes no state, so forged frames
// cannot desynchronise a session.

import { chacha20poly1305 } from '../vendor/noble.js';
import { getU64, putU64 } from './bytes.js';
import { PakeError, KIND_SEALED, abortErrorIfAbort } from './pakewire.js';

/** Bound on one sealed message (pake.MaxPlaintext). */
export const MAX_PLAINTEXT = 16 << 10;

const TAG_LEN = 16;
const HDR_LEN = 1 + 8;
const SEALED_MIN = HDR_LEN + TAG_LEN;
const SEALED_MAX = HDR_LEN + MAX_PLAINTEXT + TAG_LEN;
const MAX_U64 = (1n << 64n) - 1n;

function header(seq) {
  const h = new Uint8Array(HDR_LEN);
  h[0] = KIND_SEALED;
  putU64(h, 1, seq);
  return h;
}

function nonce(seq) {
  const n = new Uint8Array(12);
  putU64(n, 4, seq);
  return n;
}

/**
 * One end of a sealed signalling channel, made by the CPace handshake
 * (Initiator.finish or Responder.finish in cpace.js); tests make one from
 * keys. The keys are copied, so the caller may wipe its own.
 */
export class Session {
  #initiator;
  #sendKey;
  #recvKey;
  #sendSeq = 0n;
  #recvNext = 0n;

  /**
   * @param {boolean} initiator whether this is the receiver's (initiator's) end
   * @param {Uint8Array} sendKey 32-byte key for what this end seals
   * @param {Uint8Array} recvKey 32-byte key for what the peer seals
   */
  constructor(initiator, sendKey, recvKey) {
    if (sendKey.length !== 32 || recvKey.length !== 32) throw new TypeError('session keys are 32 bytes');
    this.#initiator = !!initiator;
    this.#sendKey = Uint8Array.from(sendKey);
    this.#recvKey = Uint8Array.from(recvKey);
  }

  /** Whether this is the initiator's (receiver's) end. */
  get initiator() {
    return this.#initiator;
  }

  /**
   * Encrypts plaintext (Uint8Array, at most MAX_PLAINTEXT bytes) into the
   * next Sealed frame for the peer. Frames must be relayed in the order
   * they were sealed: the peer refuses a number below one it has accepted.
   * @returns {Uint8Array}
   */
  seal(plaintext) {
    if (plaintext.length > MAX_PLAINTEXT) throw new PakeError('too_large', 'pake seal: plaintext too large');
    // MaxUint64 is never used, so the receiver's "next" never overflows.
    if (this.#sendSeq === MAX_U64) throw new PakeError('exhausted', 'pake seal: sequence numbers exhausted');
    const seq = this.#sendSeq;
    const h = header(seq);
    const ct = chacha20poly1305(this.#sendKey, nonce(seq), h).encrypt(plaintext);
    this.#sendSeq = seq + 1n;
    const out = new Uint8Array(HDR_LEN + ct.length);
    out.set(h, 0);
    out.set(ct, HDR_LEN);
    return out;
  }

  /**
   * Authenticates and decrypts a Sealed frame from the peer. Throws a
   * PakeError: 'bad_frame' if it is not a well-formed Sealed frame,
   * 'replay' if its number is not above the last accepted, 'decrypt' if it
   * does not authenticate, or the peer's abort error for an Abort frame.
   * @returns {Uint8Array} the plaintext
   */
  open(frame) {
    abortErrorIfAbort(frame, 'pake open');
    if (frame.length < SEALED_MIN || frame.length > SEALED_MAX || frame[0] !== KIND_SEALED) {
      throw new PakeError('bad_frame', 'pake open: malformed handshake frame');
    }
    const seq = getU64(frame, 1);
    if (seq === MAX_U64) throw new PakeError('bad_frame', 'pake open: malformed handshake frame');
    if (seq < this.#recvNext) throw new PakeError('replay', 'pake open: replayed or reordered sealed frame');
    let pt;
    try {
      pt = chacha20poly1305(this.#recvKey, nonce(seq), header(seq)).decrypt(frame.subarray(HDR_LEN));
    } catch {
      throw new PakeError('decrypt', 'pake open: sealed frame failed authentication');
    }
    this.#recvNext = seq + 1n;
    return pt;
  }

  /** Overwrites the keys; the session is unusable afterwards. */
  wipe() {
    this.#sendKey.fill(0);
    this.#recvKey.fill(0);
    this.#sendSeq = MAX_U64;
    this.#recvNext = MAX_U64;
  }
}
