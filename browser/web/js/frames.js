// Data channel protocol, version 3 (Go's peer/wire.go): the frames the page
// exchanges with a source (the sender, a seed, another receiver) over the
// data channel labelled DATA_CHANNEL_LABEL. Every message is one frame: a
// type byte, then big-endian fields.
//
//	downloader                                source
//	  |<------------------- 'M' signed manifest part ...| (until total bytes)
//	  |<------------------- 'H' have-bitmap part ...    | (pieces it can serve)
//	  |-- 'S' serves (only if we serve others) -------->|
//	  |-- 'H' have-bitmap part ... -------------------->| (pieces we hold)
//	  |-- 'W' want piece indices ---------------------->| (only pieces it has)
//	  |<------------------- 'D' piece data ...          | (in order within a piece)
//	  |<------------------- 'A' have piece indices      | (as it verifies more)
//	  |<------------------- 'C' source changed {file}   | (it no longer offers that file)
//	  |-- 'A' have piece indices ---------------------->| (as we verify more)
//	  |-- 'X' cancel piece indices -------------------->| (arrived elsewhere)
//	  |-- 'F' finished {seeding} ---------------------->| (all verified)
//	  |<------------------- 'E' error (either way, ends the channel)
//
//	'M' manifest part  ['M'][total:4][offset:4][bytes]   total ≤ MAX_SIGNED_MANIFEST
//	'H' bitmap part    ['H'][total:4][offset:4][bytes]   total ≤ MAX_BITMAP; piece i
//	                                                     is bit i%8 (LSB 0) of byte i/8
//	'W' / 'X' / 'A'    [t][n:2][piece:4 × n]             1 ≤ n ≤ MAX_LIST
//	'D' data           ['D'][piece:4][offset:4][bytes]   at least one byte
//	'F' finished       ['F'][flags:1]                    bit 0: it stays as a seed
//	'S' serves         ['S'][flags:1]                    bit 0: it serves others
//	'C' changed        ['C'][file:4]                     index in the manifest's files
//	'E' error          ['E'][reason]                     at most MAX_WHY bytes of UTF-8
//
// parseFrame checks a frame's structure with exactly Go's parseFrame bounds;
// the caller still checks indices and offsets against its own state (a
// piece index below the manifest's count, an offset inside the piece).

import { fromUTF8, getU32, putU32, utf8 } from './bytes.js';

/** The channel label; the version in it makes ends of other versions refuse each other. */
export const DATA_CHANNEL_LABEL = 'p2pxfer/3';

/** Bound on one data channel message (lane.MaxMessage). */
export const MAX_FRAME = 64 << 10;
/** Bound on an error frame's reason, in bytes. */
export const MAX_WHY = 256;
const PART_HEADER = 9;
const DATA_HEADER = 9;
/** Piece bytes one 'D' frame carries at most. */
export const MAX_DATA_PAYLOAD = MAX_FRAME - DATA_HEADER;
/** Indices in one 'W', 'X' or 'A' frame at most. */
export const MAX_LIST = Math.floor((MAX_FRAME - 3) / 4);
/** Bound on an 'M' total: a manifest (chunker.MaxManifestSize) and its 64-byte signature. */
export const MAX_SIGNED_MANIFEST = (64 << 20) + 64;
/** Bound on an 'H' total: one bit per piece, chunks and parity (2 × chunker.MaxChunks). */
export const MAX_BITMAP = (2 * (1 << 24)) / 8;

/** Flag bit of 'F' and 'S' frames. */
export const FLAG_SEEDING = 1;

// Frame types, the first byte of every message.
export const T_MANIFEST = 0x4d; // 'M'
export const T_BITMAP = 0x48; // 'H'
export const T_HAVE = 0x41; // 'A'
export const T_WANT = 0x57; // 'W'
export const T_CANCEL = 0x58; // 'X'
export const T_DATA = 0x44; // 'D'
export const T_FINISHED = 0x46; // 'F'
export const T_SERVES = 0x53; // 'S'
export const T_ERROR = 0x45; // 'E'
export const T_CHANGED = 0x43; // 'C'

/** A frame that breaks the protocol; the channel should end with an 'E' frame. */
export class ProtocolError extends Error {
  constructor(message) {
    super(`protocol error: ${message}`);
    this.name = 'ProtocolError';
  }
}

const q = (t) => `'${String.fromCharCode(t)}'`;

/**
 * Decodes one message, checking its structure. Data aliases b (no copy:
 * 'D' payloads are large), so copy it before reusing b's buffer.
 * @param {Uint8Array} b
 * @returns {{type:number, index?:number, offset?:number, total?:number, list?:number[],
 *   flags?:number, file?:number, data?:Uint8Array, why?:string}}
 */
export function parseFrame(b) {
  if (b.length === 0) throw new ProtocolError('empty frame');
  if (b.length > MAX_FRAME) throw new ProtocolError(`frame of ${b.length} bytes`);
  const type = b[0];
  switch (type) {
    case T_MANIFEST:
    case T_BITMAP: {
      if (b.length < PART_HEADER || (b.length === PART_HEADER && getU32(b, 1) !== 0)) {
        throw new ProtocolError(`short ${q(type)} frame`);
      }
      const total = getU32(b, 1);
      const offset = getU32(b, 5);
      const data = b.subarray(PART_HEADER);
      const limit = type === T_BITMAP ? MAX_BITMAP : MAX_SIGNED_MANIFEST;
      if (total > limit || offset + data.length > total) throw new ProtocolError(`${q(type)} frame out of bounds`);
      return { type, total, offset, data };
    }
    case T_WANT:
    case T_CANCEL:
    case T_HAVE: {
      if (b.length < 3) throw new ProtocolError(`short ${q(type)} frame`);
      const n = (b[1] << 8) | b[2];
      if (n === 0 || b.length !== 3 + 4 * n) throw new ProtocolError(`${q(type)} frame length`);
      const list = new Array(n);
      for (let i = 0; i < n; i++) list[i] = getU32(b, 3 + 4 * i);
      return { type, list };
    }
    case T_DATA:
      if (b.length <= DATA_HEADER) throw new ProtocolError('short data frame');
      return { type, index: getU32(b, 1), offset: getU32(b, 5), data: b.subarray(DATA_HEADER) };
    case T_FINISHED:
    case T_SERVES:
      if (b.length !== 2 || (b[1] & ~FLAG_SEEDING) !== 0) throw new ProtocolError(`${q(type)} frame`);
      return { type, flags: b[1] };
    case T_CHANGED:
      if (b.length !== 5) throw new ProtocolError(`${q(type)} frame length`);
      return { type, file: getU32(b, 1) };
    case T_ERROR: {
      const data = b.subarray(1);
      const why = data.length > MAX_WHY ? null : fromUTF8(data);
      if (why === null) throw new ProtocolError('malformed error frame');
      return { type, data, why };
    }
  }
  throw new ProtocolError(`unknown frame type 0x${type.toString(16)}`);
}

/** A 'D' frame: bytes of piece index starting at offset (1..MAX_DATA_PAYLOAD bytes). */
export function dataFrame(index, offset, bytes) {
  if (bytes.length === 0 || bytes.length > MAX_DATA_PAYLOAD) throw new RangeError('data frame payload size');
  const b = new Uint8Array(DATA_HEADER + bytes.length);
  b[0] = T_DATA;
  putU32(b, 1, index);
  putU32(b, 5, offset);
  b.set(bytes, DATA_HEADER);
  return b;
}

/**
 * Splits whole (a signed manifest or a have-bitmap) into 'M' or 'H'
 * frames; an empty whole still takes one frame so the peer hears of it.
 * @returns {Uint8Array[]}
 */
export function partFrames(type, whole) {
  if (type !== T_MANIFEST && type !== T_BITMAP) throw new RangeError('part frames are M or H');
  const out = [];
  const step = MAX_FRAME - PART_HEADER;
  for (let off = 0; off < whole.length || off === 0; off += step) {
    const end = Math.min(off + step, whole.length);
    const b = new Uint8Array(PART_HEADER + end - off);
    b[0] = type;
    putU32(b, 1, whole.length);
    putU32(b, 5, off);
    b.set(whole.subarray(off, end), PART_HEADER);
    out.push(b);
    if (whole.length === 0) break;
  }
  return out;
}

/**
 * Encodes piece indices as 'W', 'X' or 'A' frames of at most MAX_LIST
 * each. @returns {Uint8Array[]}
 */
export function listFrames(type, indices) {
  if (type !== T_WANT && type !== T_CANCEL && type !== T_HAVE) throw new RangeError('list frames are W, X or A');
  const out = [];
  for (let i = 0; i < indices.length; i += MAX_LIST) {
    const part = indices.slice(i, i + MAX_LIST);
    const b = new Uint8Array(3 + 4 * part.length);
    b[0] = type;
    b[1] = part.length >> 8;
    b[2] = part.length & 255;
    part.forEach((x, k) => putU32(b, 3 + 4 * k, x));
    out.push(b);
  }
  return out;
}

/** An 'F' (finished) or 'S' (serves) frame; seeding sets bit 0. */
export function flagFrame(type, seeding) {
  if (type !== T_FINISHED && type !== T_SERVES) throw new RangeError('flag frames are F or S');
  return Uint8Array.of(type, seeding ? FLAG_SEEDING : 0);
}

/** A 'C' frame: file fi changed at this source. */
export function changedFrame(fi) {
  const b = new Uint8Array(5);
  b[0] = T_CHANGED;
  putU32(b, 1, fi);
  return b;
}

/**
 * An 'E' frame. Give a fixed reason, never a local error's text, which
 * could show the peer local details; it is cut to MAX_WHY bytes at a
 * character boundary.
 */
export function errorFrame(msg) {
  let b = utf8(msg);
  if (b.length > MAX_WHY) {
    let n = MAX_WHY;
    while (n > 0 && (b[n] & 0xc0) === 0x80) n--; // do not split a character
    b = b.subarray(0, n);
  }
  const out = new Uint8Array(1 + b.length);
  out[0] = T_ERROR;
  out.set(b, 1);
  return out;
}

/**
 * Collects one source's 'D' frames into whole pieces, with Go's checks
 * (peer/receive.go): the index must name a piece of the manifest, a piece
 * comes whole before the next starts, in order of offset, and never longer
 * than the manifest says. The size comes from the manifest, never the peer.
 */
export class PieceReceiver {
  #numPieces;
  #pieceSize;
  #cur = -1;
  #buf = null;
  #len = 0;

  /**
   * @param {number} numPieces Manifest.numPieces
   * @param {(i: number) => number} pieceSize size of piece i (Manifest.piece(i).size)
   */
  constructor(numPieces, pieceSize) {
    this.#numPieces = numPieces;
    this.#pieceSize = pieceSize;
  }

  /**
   * Takes one parsed 'D' frame; returns {index, data} when it completes a
   * piece (data is the piece's bytes, not yet verified), else null.
   * Throws ProtocolError for anything out of place.
   */
  add(f) {
    if (f.index >= this.#numPieces) throw new ProtocolError(`data for unknown piece ${f.index}`);
    if (this.#cur < 0) {
      this.#cur = f.index;
      this.#buf = new Uint8Array(this.#pieceSize(f.index));
      this.#len = 0;
    }
    if (f.index !== this.#cur || f.offset !== this.#len || this.#len + f.data.length > this.#buf.length) {
      throw new ProtocolError(`piece ${f.index} data out of order`);
    }
    this.#buf.set(f.data, this.#len);
    this.#len += f.data.length;
    if (this.#len < this.#buf.length) return null;
    const out = { index: this.#cur, data: this.#buf };
    this.#cur = -1;
    this.#buf = null;
    return out;
  }

  /** The piece being received, or -1: a 'C' or cancel may make the page drop it. */
  get current() {
    return this.#cur;
  }
}

/**
 * Reassembles one 'M' or 'H' whole from its parts, in order. The buffer
 * grows with what arrived (up to 1 MiB reserved at first), never to a
 * total the peer merely claims.
 */
export class Assembler {
  #buf = null;
  #len = 0;
  #total = 0;
  #done = false;

  /** Takes one parsed part; returns the whole (Uint8Array) when complete, else null. */
  add(f) {
    if (this.#done) throw new ProtocolError(`second ${q(f.type)}`);
    if (this.#buf === null) {
      this.#total = f.total;
      this.#buf = new Uint8Array(Math.min(f.total, 1 << 20));
    }
    if (f.offset !== this.#len || f.total !== this.#total) throw new ProtocolError(`${q(f.type)} part out of order`);
    if (this.#len + f.data.length > this.#buf.length) {
      const grown = new Uint8Array(Math.min(this.#total, Math.max(2 * this.#buf.length, this.#len + f.data.length)));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(f.data, this.#len);
    this.#len += f.data.length;
    this.#done = this.#len === this.#total;
    return this.#done ? this.#buf.subarray(0, this.#len) : null;
  }
}
