// Have-bitmaps: which pieces a peer holds, as the 'H' frames carry them
// (Go's chunker.Bitmap): bit i is bit i%8, least significant first, of
// byte i/8, and the unused bits of the last byte are zero. The page reads
// each source's bitmap and sends its own; a count from a peer is never
// trusted, only the manifest's piece count (numChunks + numParity).

/** A fixed-length set of piece indices 0..n-1. */
export class Bitmap {
  #n;
  #b;
  #count = 0;

  /** An empty bitmap for n pieces. */
  constructor(n) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('bitmap length');
    this.#n = n;
    this.#b = new Uint8Array(Math.ceil(n / 8));
  }

  /**
   * A bitmap for n pieces from a peer's wire form. Throws RangeError if p
   * has the wrong length or bits set beyond n-1: either means the peer
   * disagrees about the piece count (Go refuses it the same way).
   */
  static fromBytes(n, p) {
    const m = new Bitmap(n);
    if (p.length !== m.#b.length) throw new RangeError(`bitmap: ${p.length} bytes for ${n} bits, want ${m.#b.length}`);
    const r = n % 8;
    if (r !== 0 && p[p.length - 1] >> r !== 0) throw new RangeError(`bitmap: bits set beyond index ${n - 1}`);
    m.#b.set(p);
    for (const x of p) {
      let v = x;
      while (v) {
        m.#count += v & 1;
        v >>= 1;
      }
    }
    return m;
  }

  /** The number of indices covered. */
  get length() {
    return this.#n;
  }

  /** How many indices are set. */
  get count() {
    return this.#count;
  }

  /** Adds i; an index out of range is ignored, so a hostile one changes nothing. */
  set(i) {
    if (!Number.isInteger(i) || i < 0 || i >= this.#n) return;
    const mask = 1 << (i % 8);
    if ((this.#b[i >> 3] & mask) === 0) {
      this.#b[i >> 3] |= mask;
      this.#count++;
    }
  }

  /** Removes i; an index out of range is ignored. */
  clear(i) {
    if (!Number.isInteger(i) || i < 0 || i >= this.#n) return;
    const mask = 1 << (i % 8);
    if ((this.#b[i >> 3] & mask) !== 0) {
      this.#b[i >> 3] &= ~mask;
      this.#count--;
    }
  }

  /** Whether i is set; false out of range. */
  has(i) {
    return Number.isInteger(i) && i >= 0 && i < this.#n && (this.#b[i >> 3] & (1 << (i % 8))) !== 0;
  }

  /** A copy of the wire form, ceil(n/8) bytes, for frames.partFrames(T_BITMAP, …). */
  bytes() {
    return Uint8Array.from(this.#b);
  }
}
