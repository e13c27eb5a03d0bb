// Backlog holds the frames a source sends while the page checks its
// manifest (the signature, then opening the store, which may take a while
// for a large one). Before the page's first 'W' a source may send only its
// have-bitmap ('H' parts, at most MAX_BITMAP bytes), the haves it gains
// meanwhile ('A'), the files it withdraws ('C') and an error ('E'): piece
// data cannot be owed yet and the manifest came whole. So the backlog
// refuses 'D' and a second 'M' at once, and refuses the rest beyond what
// an honest source sends in that time: more is a flood, and the data
// channel gives a receiver no way to push back.

import { MAX_BITMAP, MAX_FRAME, ProtocolError, T_DATA, T_MANIFEST } from './frames.js';

/** Frames a source may send while its manifest is checked. */
export const MAX_BACKLOG_FRAMES = 2048;
/**
 * Their bytes: the largest have-bitmap, with room for the haves and
 * withdrawals of the same time (a have list frame carries 16383 pieces).
 */
export const MAX_BACKLOG_BYTES = MAX_BITMAP + 64 * MAX_FRAME;

export class Backlog {
  #frames = [];
  #bytes = 0;

  /** put keeps frame b, or throws ProtocolError if it may not come yet or is one too many. */
  put(b) {
    if (b.length > 0 && b[0] === T_DATA) throw new ProtocolError('piece data before any piece was asked for');
    if (b.length > 0 && b[0] === T_MANIFEST) throw new ProtocolError("a second 'M' after the whole manifest");
    if (this.#frames.length >= MAX_BACKLOG_FRAMES || this.#bytes + b.length > MAX_BACKLOG_BYTES) {
      throw new ProtocolError(`more than ${MAX_BACKLOG_FRAMES} frames or ${MAX_BACKLOG_BYTES >> 20} MiB while the manifest was being checked`);
    }
    this.#frames.push(b);
    this.#bytes += b.length;
  }

  /** take returns the frames kept, in order, and empties the backlog. */
  take() {
    const out = this.#frames;
    this.#frames = [];
    this.#bytes = 0;
    return out;
  }

  get length() {
    return this.#frames.length;
  }

  get bytes() {
    return this.#bytes;
  }
}
