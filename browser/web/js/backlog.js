// Backlog holds the frames a source sends while the page checks its
// manifest (the signature, then opening the store, which may take a while
// for a large one). Before the page's first 'W' a source may send only its
// have-bitmap ('H' parts, at most MAX_BITMAP bytes), the haves it gains
// meanwhile ('A'), the files it withdraws ('C') and an error ('E'): piece
// data cannot be owed yet and the manifest came whole. So the backlog
// refuses 'D' and a second 'M' at once, and refuses the rest beyond what
// an honest source sends in that time: more is a flood, and the data
// channel gives a receiver no way to push back. A seed still downloading
// reports each piece it verifies, possibly one per 'A' frame, and a large
// manifest may take seconds to check: consecutive 'A' frames are merged
// as they come, so their count does not grow with the pieces, only their
// bytes (4 per piece).

import { getU32 } from './bytes.js';
import { listFrames, MAX_BITMAP, MAX_FRAME, MAX_LIST, ProtocolError, T_DATA, T_HAVE, T_MANIFEST } from './frames.js';

/** Frames (consecutive haves counting as one) a source may send while its manifest is checked. */
export const MAX_BACKLOG_FRAMES = 4096;
/**
 * Their bytes: the largest have-bitmap, with room for the haves and
 * withdrawals of the same time (a have list frame carries 16383 pieces).
 */
export const MAX_BACKLOG_BYTES = MAX_BITMAP + 64 * MAX_FRAME;

export class Backlog {
  #frames = [];
  #bytes = 0;
  #haves = null; // the pieces of the 'A' frames since the last other frame

  #charge(bytes, frames) {
    if (this.#frames.length + frames > MAX_BACKLOG_FRAMES || this.#bytes + bytes > MAX_BACKLOG_BYTES) {
      throw new ProtocolError(`more than ${MAX_BACKLOG_FRAMES} frames or ${MAX_BACKLOG_BYTES >> 20} MiB while the manifest was being checked`);
    }
    this.#bytes += bytes;
  }

  #flushHaves(bounded = true) {
    if (!this.#haves) return;
    if (bounded) this.#charge(3, 1);
    this.#frames.push(listFrames(T_HAVE, this.#haves)[0]);
    this.#haves = null;
  }

  /** put keeps frame b, or throws ProtocolError if it may not come yet or is one too many. */
  put(b) {
    if (b.length > 0 && b[0] === T_DATA) throw new ProtocolError('piece data before any piece was asked for');
    if (b.length > 0 && b[0] === T_MANIFEST) throw new ProtocolError("a second 'M' after the whole manifest");
    const n = b.length >= 3 ? (b[1] << 8) | b[2] : 0;
    if (b[0] === T_HAVE && n > 0 && b.length === 3 + 4 * n) {
      this.#charge(4 * n, 0);
      for (let i = 0; i < n; i++) {
        (this.#haves ??= []).push(getU32(b, 3 + 4 * i));
        if (this.#haves.length === MAX_LIST) this.#flushHaves();
      }
      return;
    }
    this.#flushHaves();
    this.#charge(b.length, 1);
    this.#frames.push(b);
  }

  /** take returns the frames kept, in order, and empties the backlog. */
  take() {
    this.#flushHaves(false); // its pieces were charged as they came
    const out = this.#frames;
    this.#frames = [];
    this.#bytes = 0;
    return out;
  }

  get length() {
    return this.#frames.length + (this.#haves ? 1 : 0);
  }

  get bytes() {
    return this.#bytes;
  }
}
