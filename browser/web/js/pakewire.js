// Handshake wire protocol, version 1: the frames of Go's pake/wire.go, the
// errors they map to, and abort frames. cpace.js (the handshake) and
// seal.js (sealed frames) build on it; it is its own module so that both
// can without importing each other.
//
//	initiator (receiver)                              responder (sender)
//	Hello   [1][ver=1][sid:16][Ya:32]       ------->
//	                                        <-------  Reply   [2][Yb:32][MAC_b:32]
//	verify MAC_b
//	Confirm [3][MAC_a:32]                   ------->  verify MAC_a
//	Sealed  [4][seq:8][ChaCha20-Poly1305]   <------>  Sealed  [4][seq:8][...]
//	Abort   [5][reason]                     <------>  Abort   [5][reason]
//
// Every length is fixed except Sealed's; any other length is 'bad_frame'.
// Abort frames are unauthenticated: they can only make the receiving side
// fail, which a relay can cause anyway by dropping frames.

/** Handshake protocol version, carried in Hello and bound into CPace's CI. */
export const PAKE_VERSION = 1;

// Frame kinds, the first byte of every handshake frame.
export const KIND_HELLO = 1;
export const KIND_REPLY = 2;
export const KIND_CONFIRM = 3;
export const KIND_SEALED = 4;
export const KIND_ABORT = 5;

/** Abort reasons, the payload byte of an Abort frame. */
export const ABORT_WRONG_PASSWORD = 1;
export const ABORT_VERSION = 2;
export const ABORT_BUSY = 3;
export const ABORT_OTHER = 4;

// Fixed field and frame sizes: every frame but Sealed has exactly one length.
export const SID_LEN = 16;
export const POINT_LEN = 32;
export const MAC_LEN = 32;
export const HELLO_LEN = 1 + 1 + SID_LEN + POINT_LEN;
export const REPLY_LEN = 1 + POINT_LEN + MAC_LEN;
export const CONFIRM_LEN = 1 + MAC_LEN;
const ABORT_LEN = 2;
const SEALED_MIN = 1 + 8 + 16;
const SEALED_MAX = 1 + 8 + (16 << 10) + 16;

/**
 * A handshake or session failure. code matches Go's sentinels so the page
 * can say what happened in plain words: 'wrong_password', 'version',
 * 'bad_frame', 'bad_point', 'replay', 'decrypt', 'busy', 'too_large',
 * 'finished', 'exhausted', 'empty_password'. peerAborted is true when the
 * peer's Abort frame said so (Go's ErrPeerAborted wrapping the reason).
 */
export class PakeError extends Error {
  constructor(code, message, peerAborted = false) {
    super(message);
    this.name = 'PakeError';
    this.code = code;
    this.peerAborted = peerAborted;
  }
}

/**
 * Returns the kind of frame b after checking its length for that kind (Go's
 * FrameKind), so a caller can dispatch without parsing further. A Hello of
 * another version is KIND_HELLO whatever its length; respond reports it as
 * 'version'. Throws PakeError('bad_frame') otherwise.
 */
export function frameKind(b) {
  if (b.length === 0) throw new PakeError('bad_frame', 'pake frame kind: malformed handshake frame');
  const k = b[0];
  let ok = false;
  switch (k) {
    case KIND_HELLO:
      ok = b.length === HELLO_LEN || (b.length >= 2 && b[1] !== PAKE_VERSION);
      break;
    case KIND_REPLY:
      ok = b.length === REPLY_LEN;
      break;
    case KIND_CONFIRM:
      ok = b.length === CONFIRM_LEN;
      break;
    case KIND_SEALED:
      ok = b.length >= SEALED_MIN && b.length <= SEALED_MAX;
      break;
    case KIND_ABORT:
      ok = b.length === ABORT_LEN;
      break;
  }
  if (!ok) throw new PakeError('bad_frame', 'pake frame kind: malformed handshake frame');
  return k;
}

/** An Abort frame with reason (one of the ABORT_* constants). */
export function abortFrame(reason) {
  return Uint8Array.of(KIND_ABORT, reason);
}

/**
 * The reason byte of an Abort frame. Unknown reasons are returned as they
 * are (a newer peer may add some); abortError treats them as other.
 */
export function parseAbort(b) {
  if (b.length !== ABORT_LEN || b[0] !== KIND_ABORT) throw new PakeError('bad_frame', 'pake parse abort: malformed handshake frame');
  return b[1];
}

/** The PakeError a received abort reason stands for (Go's AbortError). */
export function abortError(reason) {
  switch (reason) {
    case ABORT_WRONG_PASSWORD:
      return new PakeError('wrong_password', 'peer aborted the handshake: wrong password', true);
    case ABORT_VERSION:
      return new PakeError('version', 'peer aborted the handshake: unsupported handshake version', true);
    case ABORT_BUSY:
      return new PakeError('busy', 'peer aborted the handshake: peer busy', true);
  }
  return new PakeError('peer_aborted', 'peer aborted the handshake', true);
}

/**
 * The abort reason to send after err, so the peer's error matches what
 * went wrong here. A peer's own abort is never echoed back (it would
 * bounce), nor is anything that is not a PakeError.
 */
export function abortReason(err) {
  if (!(err instanceof PakeError) || err.peerAborted) return ABORT_OTHER;
  switch (err.code) {
    case 'wrong_password':
      return ABORT_WRONG_PASSWORD;
    case 'version':
      return ABORT_VERSION;
    case 'busy':
      return ABORT_BUSY;
  }
  return ABORT_OTHER;
}

/** Throws the peer's abort error, prefixed with op, if b is an Abort frame. */
export function abortErrorIfAbort(b, op) {
  if (b.length === ABORT_LEN && b[0] === KIND_ABORT) {
    const e = abortError(b[1]);
    e.message = `${op}: ${e.message}`;
    throw e;
  }
}
