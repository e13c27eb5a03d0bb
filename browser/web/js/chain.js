// Chained chunk hashes, as Go's chunker/chain.go defines them (manifest
// version 3 keeps version 2's chaining).
//
// A chunk's hash in the manifest is SHA-256's chaining value after the
// file's bytes up to the chunk's end: the eight state words, big-endian,
// after the chunk's last 64-byte block. A file's last chunk has the file's
// SHA-256 itself. To check chunk k, resume SHA-256 from chunk k-1's value
// (SHA-256's initial value for k = 0) at byte offset k*chunk_size, absorb
// the chunk and compare. Each check needs only the chunk and the manifest,
// so chunks verify in any order (in a Web Worker), and checking every chunk
// proves the whole file's SHA-256 without a second pass.
//
// Resuming needs SHA-256 seeded with a state and a length, which WebCrypto
// does not offer; noble's _SHA256 class (pinned in vendor/VERSIONS.md) keeps
// its state in get()/set() and its byte count in length, and the tests check
// both against Go.

import { _SHA256, sha256 } from '../vendor/noble.js';
import { equal } from './bytes.js';

/** SHA-256's initial value (FIPS 180-4 §5.3.3), big-endian. */
export const INITIAL_CHAIN = Uint8Array.from([
  0x6a, 0x09, 0xe6, 0x67, 0xbb, 0x67, 0xae, 0x85, 0x3c, 0x6e, 0xf3, 0x72, 0xa5, 0x4f, 0xf5, 0x3a,
  0x51, 0x0e, 0x52, 0x7f, 0x9b, 0x05, 0x68, 0x8c, 0x1f, 0x83, 0xd9, 0xab, 0x5b, 0xe0, 0xcd, 0x19,
]);

/**
 * A SHA-256 that continues from chaining value prev (32 bytes) after
 * offset bytes of the file. offset must be a multiple of 64 (chunk sizes
 * are powers of two of at least 16 KiB) and a safe integer.
 * @returns noble's _SHA256: update(bytes), digest(), and chainValue below
 */
export function resumeChain(prev, offset) {
  if (prev.length !== 32) throw new TypeError('chaining value is 32 bytes');
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % 64 !== 0) throw new RangeError('offset must be a multiple of 64');
  const h = new _SHA256();
  const v = new DataView(prev.buffer, prev.byteOffset, 32);
  const w = [];
  for (let i = 0; i < 8; i++) w.push(v.getUint32(4 * i, false));
  h.set(...w);
  h.length = offset;
  return h;
}

/**
 * The chaining value of h (a chunk's hash) after it absorbed a whole number
 * of 64-byte blocks since it started or resumed. It throws otherwise, since
 * a partial block is still buffered and not in the state.
 */
export function chainValue(h) {
  if (h.pos !== 0 || h.finished) throw new Error('chain value needs whole blocks');
  const out = new Uint8Array(32);
  const v = new DataView(out.buffer);
  h.get().forEach((x, i) => v.setUint32(4 * i, x >>> 0, false));
  return out;
}

/**
 * Reports whether data is the chunk ref describes (Go's ChunkRef.Verify):
 * ref = {size, offset, prev, hash, last}, as manifest.js's chunk() returns.
 * Its length and its place in the file's hash chain must both match.
 */
export function verifyChunk(ref, data) {
  if (data.length !== ref.size) return false;
  const h = resumeChain(ref.prev, ref.offset);
  h.update(data);
  if (ref.last) return equal(h.digest(), ref.hash);
  return equal(chainValue(h), ref.hash);
}

/**
 * Reports whether data is piece ref (Manifest.piece()): a data chunk by its
 * place in the hash chain, a parity piece by its size and SHA-256.
 */
export function verifyPiece(ref, data) {
  if (!ref.parity) return verifyChunk(ref.chunk, data);
  return data.length === ref.size && equal(sha256(data), ref.hash);
}

/**
 * Hashes one file front to back for a sender: feed its bytes with
 * update() in any slices; finish() returns every chunk's hash (the last
 * being the file's SHA-256) as a manifest lists them. One pass, constant
 * memory besides the 32 bytes per chunk it returns.
 */
export class FileHasher {
  #chunkSize;
  #h = new _SHA256();
  #inChunk = 0;
  #chunks = [];

  constructor(chunkSize) {
    if (!Number.isSafeInteger(chunkSize) || chunkSize < 64 || chunkSize % 64 !== 0) throw new RangeError('bad chunk size');
    this.#chunkSize = chunkSize;
  }

  update(data) {
    let off = 0;
    while (off < data.length) {
      // A chunk that just ended is recorded once more bytes follow: the
      // last chunk's hash is the digest, not the chaining value.
      if (this.#inChunk === this.#chunkSize) {
        this.#chunks.push(chainValue(this.#h));
        this.#inChunk = 0;
      }
      const n = Math.min(data.length - off, this.#chunkSize - this.#inChunk);
      this.#h.update(data.subarray(off, off + n));
      this.#inChunk += n;
      off += n;
    }
    return this;
  }

  /** @returns {{sha256: Uint8Array, chunks: Uint8Array[]}} chunks is empty for an empty file */
  finish() {
    const sha = this.#h.digest();
    const chunks = this.#inChunk > 0 ? [...this.#chunks, sha] : [];
    return { sha256: sha, chunks };
  }
}
