// The signed manifest: what files a transfer holds and the hash of every
// chunk, as Go's chunker/manifest.go (format version 3) and peer/trust.go
// (signature) define them. The page gets it in 'M' frames (frames.js) from
// any source, so everything in it is hostile until checked here:
//
//	signed manifest = signature(64) || manifest
//	signature       = Ed25519(key, "p2pxfer signed manifest v1\0" || room ID || 0 || manifest)
//
// The key comes from the signalling server's joined message and again in
// the sender's sealed answer (the page compares the two): a seed can forge
// neither, and the room ID in the signature keeps a manifest from being
// replayed into another room.
//
// The manifest is one JSON object (see chunker/manifest.go for the field
// list). Go accepts any JSON spelling and re-encodes canonically for the
// digest; every Go source sends the canonical bytes it signed, so this
// decoder insists on them: after checking every field with Go's limits it
// re-encodes and refuses any difference. That also keeps JSON.parse's
// looser number and string handling (1e3, 1.0, lone surrogates, case of
// keys) from ever meaning something Go would not.

import { ed25519, sha256 } from '../vendor/noble.js';
import { concat, equal, fromBase64, fromHex, fromUTF8, toBase64, toHex, utf8, wellFormed } from './bytes.js';
import { INITIAL_CHAIN } from './chain.js';

/** The manifest format version; any other is refused ('version'). */
export const MANIFEST_VERSION = 3;
// Go's chunker limits: they bound what a hostile manifest can make the page
// allocate or create, so they must be the same on both ends.
export const MIN_CHUNK_SIZE = 16 << 10;
export const MAX_CHUNK_SIZE = 64 << 20;
export const MAX_MANIFEST_SIZE = 64 << 20;
export const MAX_FILES = 1 << 20;
export const MAX_DIRS = 1 << 20;
export const MAX_CHUNKS = 1 << 24;
export const MAX_FILE_SIZE = 2 ** 50;
export const MAX_NAME_LEN = 4096;
export const MAX_COMPONENT_LEN = 255;
export const MAX_FEC_DATA = 64;
export const MAX_FEC_PARITY = 64;
/** SHA-256 digest and Ed25519 signature sizes. */
export const HASH_SIZE = 32;
export const SIGNATURE_SIZE = 64;
const SIGNING_CONTEXT = utf8('p2pxfer signed manifest v1\x00');
const RESERVED = ['.p2pxfer-part', '.p2pxfer-state', '.p2pxfer-tmp'];
const EMPTY_SHA256 = sha256(new Uint8Array(0));

/**
 * A manifest or signature the page must refuse. code is 'forged' (bad or
 * missing signature: a seed lying, or the wrong room), 'version' (another
 * manifest version: the sender runs another p2pxfer), 'too_large',
 * 'chunk_size', 'fec', 'bad_name', 'duplicate_name' or 'bad' (anything else
 * malformed), matching Go's sentinels.
 */
export class ManifestError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ManifestError';
    this.code = code;
  }
}

const bad = (code, msg) => new ManifestError(code, `bad manifest: ${msg}`);

/** The bytes the sender signs: context, room ID, a zero byte, the manifest. */
export function signedMessage(roomID, manifest) {
  return concat(SIGNING_CONTEXT, utf8(roomID), Uint8Array.of(0), manifest);
}

let webcryptoEd25519 = true; // until the browser says it has no Ed25519

async function verifyEd25519(key, msg, sig, useWebCrypto) {
  const subtle = globalThis.crypto?.subtle;
  if (useWebCrypto && subtle && webcryptoEd25519) {
    let k = null;
    try {
      k = await subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
    } catch (e) {
      // NotSupportedError: no Ed25519 here, use the library from now on.
      // Anything else (a key that is no point) the library refuses below.
      if (e?.name === 'NotSupportedError') webcryptoEd25519 = false;
    }
    if (k !== null) {
      try {
        return await subtle.verify({ name: 'Ed25519' }, k, sig, msg);
      } catch {
        return false;
      }
    }
  }
  try {
    // zip215 false: RFC 8032's strict checks, closest to Go's Verify.
    return ed25519.verify(sig, msg, key, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * Checks a signed manifest from a peer against the room's key (32 bytes,
 * from joined) and decodes it. A bad signature is ManifestError 'forged';
 * a well-signed manifest that does not decode is the decoder's error (the
 * sender itself is broken). opts.webcrypto = false forces the library's
 * Ed25519 (tests use it to check both paths).
 * @returns {Promise<Manifest>}
 */
export async function openManifest(key, roomID, signed, opts = {}) {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new ManifestError('forged', 'forged manifest: the room has no manifest key');
  if (signed.length < SIGNATURE_SIZE) throw new ManifestError('forged', 'forged manifest: manifest without signature');
  const sig = signed.subarray(0, SIGNATURE_SIZE);
  const body = signed.subarray(SIGNATURE_SIZE);
  const ok = await verifyEd25519(key, signedMessage(roomID, body), sig, opts.webcrypto !== false);
  if (!ok) throw new ManifestError('forged', "forged manifest: manifest signature does not match the sender's key");
  return decodeManifest(body);
}

/**
 * A fresh manifest-signing key for one room, for a page that sends:
 * {secretKey: 32-byte seed, publicKey: 32 bytes to register at create}.
 */
export function newManifestKey() {
  const { secretKey, publicKey } = ed25519.keygen();
  return { secretKey, publicKey };
}

/** signature || manifest for roomID, as sources send it (Go's SignManifest). */
export function signManifest(secretKey, roomID, manifest) {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) throw new ManifestError('forged', 'sign manifest: no signing key');
  return concat(ed25519.sign(signedMessage(roomID, manifest), secretKey), manifest);
}

// --- names -------------------------------------------------------------

function isCc(c) {
  return c <= 0x1f || (c >= 0x7f && c <= 0x9f);
}

/**
 * Why name is unsafe to create under a destination folder, or "" (Go's
 * nameProblem): a relative slash-separated path with no way to climb out
 * and nothing that could fool a human reading it (control characters,
 * line separators, bidi overrides).
 */
export function nameProblem(name) {
  if (typeof name !== 'string') return 'not a string';
  if (name === '') return 'empty';
  if (!wellFormed(name)) return 'not valid UTF-8';
  const b = utf8(name);
  if (b.length > MAX_NAME_LEN) return `longer than ${MAX_NAME_LEN} bytes`;
  for (const ch of name) {
    const c = ch.codePointAt(0);
    if (c === 0x5c) return 'contains a backslash';
    if (isCc(c)) return 'contains a control character';
    if (c === 0x2028 || c === 0x2029) return 'contains a line or paragraph separator';
    if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) return 'contains a bidirectional override';
  }
  for (const comp of name.split('/')) {
    if (comp === '') return "empty path component (leading, trailing or double '/')";
    if (comp === '.' || comp === '..') return "'.' or '..' path component";
    if (utf8(comp).length > MAX_COMPONENT_LEN) return `path component longer than ${MAX_COMPONENT_LEN} bytes`;
  }
  return '';
}

/**
 * Why name collides with the CLI's bookkeeping files, or "": any component
 * ending, in any case, in a reserved suffix (a receiver's destination may
 * be a case-insensitive file system).
 */
export function reservedProblem(name) {
  for (const comp of name.split('/')) {
    const lc = comp.toLowerCase();
    for (const s of RESERVED) if (lc.endsWith(s)) return `ends in reserved suffix ${s}`;
  }
  return '';
}

// cmpPath orders UTF-8 names component by component: '/' before every other byte.
function cmpPath(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a[i];
    const cb = b[i];
    if (ca === cb) continue;
    if (ca === 0x2f) return -1;
    if (cb === 0x2f) return 1;
    return ca - cb;
  }
  return a.length - b.length;
}

// checkNameSet refuses duplicates, a name that is a directory of another,
// and a listed directory that holds another name (Go's checkNameSet):
// sorted with '/' first, each name directly precedes the names below it.
function checkNameSet(files, dirs) {
  const all = [];
  files.forEach((f) => all.push({ b: utf8(f.name), s: f.name, dir: false }));
  dirs.forEach((d) => all.push({ b: utf8(d), s: d, dir: true }));
  all.sort((x, y) => cmpPath(x.b, y.b));
  for (let k = 1; k < all.length; k++) {
    const a = all[k - 1];
    const b = all[k];
    if (equal(a.b, b.b)) throw bad('duplicate_name', `${JSON.stringify(a.s)} appears twice`);
    if (b.b.length > a.b.length && b.b[a.b.length] === 0x2f && equal(b.b.subarray(0, a.b.length), a.b)) {
      if (a.dir) throw bad('bad', `directory ${JSON.stringify(a.s)} is listed but holds ${JSON.stringify(b.s)} (list only empty directories)`);
      throw bad('duplicate_name', `${JSON.stringify(a.s)} is both a file and a directory of ${JSON.stringify(b.s)}`);
    }
  }
}

// --- the manifest ------------------------------------------------------

/**
 * A validated manifest. files[i] = {name, size, sha256 (32 bytes), hashes
 * (32 bytes per chunk, the last being sha256), exec}; numChunks, totalSize
 * and digest (SHA-256 of the canonical encoding, which resume state binds
 * to) are computed once. Build one with decodeManifest or newManifest.
 */
export class Manifest {
  constructor(chunkSize, fec, files, dirs, parity, first, totalSize) {
    this.chunkSize = chunkSize;
    this.fec = fec; // null, or {k, m}
    this.files = files;
    this.dirs = dirs;
    this.parity = parity; // 32 bytes per parity piece, piece numChunks+i
    this.first = first; // first[f]: global index of file f's chunk 0; first[files.length] = numChunks
    this.numChunks = first[files.length];
    this.totalSize = totalSize;
    this.digest = null;
    this.encoded = null;
    Object.freeze(this.files);
    Object.freeze(this.dirs);
  }

  /** The number of parity pieces (0 without FEC). Pieces numChunks.. are parity. */
  get numParity() {
    return this.parity.length / HASH_SIZE;
  }

  /**
   * Pieces in all: data chunks 0..numChunks-1, then parity pieces. Have
   * bitmaps (bitmap.js) cover this many; a page that does not rebuild
   * lost chunks from parity simply never asks for the parity pieces.
   */
  get numPieces() {
    return this.numChunks + this.numParity;
  }

  /** File f's first global chunk index and chunk count; the caller checks 0 <= f < files.length. */
  fileChunks(f) {
    return { first: this.first[f], count: this.first[f + 1] - this.first[f] };
  }

  /**
   * Global chunk i: {index, file, offset, size, hash, prev, last}, what
   * chain.js's verifyChunk checks. Throws RangeError unless 0 <= i <
   * numChunks, since indices come from the network.
   */
  chunk(i) {
    if (!Number.isInteger(i) || i < 0 || i >= this.numChunks) throw new RangeError(`chunk ${i} out of range`);
    let lo = 0;
    let hi = this.files.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.first[mid + 1] > i) hi = mid;
      else lo = mid + 1;
    }
    const f = lo;
    const file = this.files[f];
    const local = i - this.first[f];
    const offset = local * this.chunkSize;
    const size = Math.min(this.chunkSize, file.size - offset);
    const n = file.hashes.length / HASH_SIZE;
    return {
      index: i,
      file: f,
      offset,
      size,
      hash: file.hashes.subarray(local * HASH_SIZE, (local + 1) * HASH_SIZE),
      prev: local > 0 ? file.hashes.subarray((local - 1) * HASH_SIZE, local * HASH_SIZE) : INITIAL_CHAIN,
      last: local === n - 1,
    };
  }

  /** The SHA-256 of parity piece numChunks+p; the caller checks 0 <= p < numParity. */
  parityHash(p) {
    return this.parity.subarray(p * HASH_SIZE, (p + 1) * HASH_SIZE);
  }

  /**
   * Piece p (Go's Manifest.Piece): {index, size, hash, parity, stripe,
   * chunk}. A data chunk (p < numChunks) carries its chunk() ref; a parity
   * piece is as long as its stripe's longest data chunk and is checked by
   * its plain SHA-256. stripe is -1 without FEC. Throws RangeError unless
   * 0 <= p < numPieces.
   */
  piece(p) {
    if (!Number.isInteger(p) || p < 0 || p >= this.numPieces) throw new RangeError(`piece ${p} out of range`);
    const n = this.numChunks;
    if (p < n) {
      const c = this.chunk(p);
      return { index: p, size: c.size, hash: c.hash, parity: false, stripe: this.fec ? Math.floor(p / this.fec.k) : -1, chunk: c };
    }
    const s = Math.floor((p - n) / this.fec.m);
    const first = s * this.fec.k;
    let size = 0;
    for (let i = first; i < Math.min(first + this.fec.k, n) && size < this.chunkSize; i++) size = Math.max(size, this.chunk(i).size);
    return { index: p, size, hash: this.parityHash(p - n), parity: true, stripe: s, chunk: null };
  }
}

// build validates and indexes, as Go's build; names and sizes come first
// so a hostile manifest is refused before anything scales with it.
function build(chunkSize, fec, files, dirs, parity) {
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE || (chunkSize & (chunkSize - 1)) !== 0) {
    throw bad('chunk_size', `chunk size ${chunkSize}: not a power of two in [${MIN_CHUNK_SIZE}, ${MAX_CHUNK_SIZE}]`);
  }
  if (fec && (!Number.isInteger(fec.k) || !Number.isInteger(fec.m) || fec.k < 1 || fec.k > MAX_FEC_DATA || fec.m < 1 || fec.m > MAX_FEC_PARITY)) {
    throw bad('fec', `fec ${fec.k}+${fec.m}: data chunks per stripe must be in [1, ${MAX_FEC_DATA}] and parity pieces in [1, ${MAX_FEC_PARITY}]`);
  }
  if (files.length === 0 && dirs.length === 0) throw bad('bad', 'no files');
  if (files.length > MAX_FILES) throw bad('too_large', `${files.length} files, limit ${MAX_FILES}`);
  if (dirs.length > MAX_DIRS) throw bad('too_large', `${dirs.length} directories, limit ${MAX_DIRS}`);
  dirs.forEach((d, i) => {
    const p = nameProblem(d) || reservedProblem(d);
    if (p) throw bad('bad_name', `dir ${i} ${JSON.stringify(d)}: ${p}`);
  });
  const sortedDirs = dirs.map((d) => ({ d, b: utf8(d) })).sort((x, y) => cmpPath(x.b, y.b)).map((x) => x.d);
  const first = new Float64Array(files.length + 1);
  let nchunks = 0;
  let total = 0;
  files.forEach((f, i) => {
    const p = nameProblem(f.name) || reservedProblem(f.name);
    if (p) throw bad('bad_name', `file ${i} ${JSON.stringify(f.name)}: ${p}`);
    if (!Number.isSafeInteger(f.size) || f.size < 0) throw bad('bad', `file ${i} ${JSON.stringify(f.name)}: size ${f.size}`);
    if (f.size > MAX_FILE_SIZE) throw bad('too_large', `file ${i} ${JSON.stringify(f.name)}: ${f.size} bytes, limit ${MAX_FILE_SIZE}`);
    const n = Math.ceil(f.size / chunkSize);
    if (nchunks + n > MAX_CHUNKS) throw bad('too_large', `more than ${MAX_CHUNKS} chunks`);
    if (f.hashes.length !== n * HASH_SIZE) {
      throw bad('bad', `file ${i} ${JSON.stringify(f.name)}: ${f.hashes.length / HASH_SIZE} chunk hashes for ${f.size} bytes, want ${n}`);
    }
    const lastOK = n > 0 ? equal(f.hashes.subarray((n - 1) * HASH_SIZE), f.sha256) : equal(f.sha256, EMPTY_SHA256);
    if (!lastOK) throw bad('bad', `file ${i} ${JSON.stringify(f.name)}: sha256 is not its last chunk's hash or, empty, that of no bytes`);
    nchunks += n;
    total += f.size;
    first[i + 1] = nchunks;
  });
  checkNameSet(files, sortedDirs);
  const want = fec ? Math.ceil(nchunks / fec.k) * fec.m : 0;
  if (parity.length !== want * HASH_SIZE) {
    throw bad('bad', `${parity.length / HASH_SIZE} parity hashes, want ${want} for ${nchunks} chunks with FEC ${fec ? `${fec.k}+${fec.m}` : 'off'}`);
  }
  const m = new Manifest(chunkSize, fec, files, sortedDirs, parity, first, total);
  const enc = encodeCanonical(m);
  if (enc.length > MAX_MANIFEST_SIZE) throw bad('too_large', `encodes to more than ${MAX_MANIFEST_SIZE} bytes`);
  m.encoded = enc;
  m.digest = sha256(enc);
  return m;
}

// Go's json.Marshal escapes these for HTML safety; the canonical form has them so.
function jsonString(s) {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function encodeCanonical(m) {
  const parts = [`{"v":${MANIFEST_VERSION},"chunk_size":${m.chunkSize},`];
  if (m.fec) parts.push(`"fec":{"k":${m.fec.k},"m":${m.fec.m}},`);
  if (m.dirs.length > 0) parts.push(`"dirs":[${m.dirs.map(jsonString).join(',')}],`);
  parts.push('"files":[');
  m.files.forEach((f, i) => {
    if (i > 0) parts.push(',');
    const n = f.hashes.length / HASH_SIZE;
    parts.push(`{"name":${jsonString(f.name)},"size":${f.size},"sha256":"${toHex(f.sha256)}","chunks":"`);
    parts.push(toBase64(f.hashes.subarray(0, Math.max(n - 1, 0) * HASH_SIZE)));
    parts.push(f.exec ? '","exec":true}' : '"}');
  });
  parts.push(']');
  if (m.fec) parts.push(`,"parity":"${toBase64(m.parity)}"`);
  parts.push('}');
  return utf8(parts.join(''));
}

/** The canonical encoding of m, what the sender signs and Digest hashes. */
export function encodeManifest(m) {
  return m.encoded;
}

const isObj = (x) => typeof x === 'object' && x !== null && !Array.isArray(x);
const keysIn = (o, allowed) => Object.keys(o).every((k) => allowed.includes(k));

/**
 * Parses and validates a manifest (the bytes after the signature) with
 * Go's limits; throws ManifestError. A sender of another p2pxfer version
 * is reported as 'version', which is what the user can act on.
 * @returns {Manifest}
 */
export function decodeManifest(b) {
  if (b.length > MAX_MANIFEST_SIZE) throw bad('too_large', `${b.length} bytes, limit ${MAX_MANIFEST_SIZE}`);
  const text = fromUTF8(b);
  if (text === null) throw bad('bad', 'not valid UTF-8');
  let w;
  try {
    w = JSON.parse(text);
  } catch (e) {
    throw bad('bad', `not JSON: ${e.message}`);
  }
  if (!isObj(w)) throw bad('bad', 'not a JSON object');
  if (w.v !== MANIFEST_VERSION) {
    if (typeof w.v === 'number') throw bad('version', `version ${w.v}, want ${MANIFEST_VERSION}`);
    throw bad('bad', 'no version');
  }
  if (!keysIn(w, ['v', 'chunk_size', 'fec', 'dirs', 'files', 'parity'])) throw bad('bad', 'unknown field');
  let fec = null;
  let parity = new Uint8Array(0);
  if ('fec' in w || 'parity' in w) {
    if (!('fec' in w && 'parity' in w)) throw bad('fec', 'fec and parity must come together');
    if (!isObj(w.fec) || !keysIn(w.fec, ['k', 'm'])) throw bad('fec', 'fec is not {"k","m"}');
    fec = { k: w.fec.k, m: w.fec.m };
    if (typeof w.parity !== 'string' || (parity = fromBase64(w.parity)) === null) throw bad('bad', 'parity is not base64');
    if (parity.length % HASH_SIZE !== 0) throw bad('bad', `parity hashes are ${parity.length} bytes, not a multiple of ${HASH_SIZE}`);
  }
  let dirs = [];
  if ('dirs' in w) {
    if (!Array.isArray(w.dirs)) throw bad('bad', 'dirs is not an array');
    if (w.dirs.length > MAX_DIRS) throw bad('too_large', `more than ${MAX_DIRS} directories`);
    if (!w.dirs.every((d) => typeof d === 'string')) throw bad('bad', 'dirs holds a non-string');
    dirs = w.dirs;
  }
  if (!Array.isArray(w.files)) throw bad('bad', 'files is not an array');
  if (w.files.length > MAX_FILES) throw bad('too_large', `more than ${MAX_FILES} files`);
  const files = w.files.map((wf, i) => {
    if (!isObj(wf) || !keysIn(wf, ['name', 'size', 'sha256', 'chunks', 'exec'])) throw bad('bad', `file ${i}: not a file object`);
    if (typeof wf.name !== 'string') throw bad('bad', `file ${i}: name is not a string`);
    if (typeof wf.size !== 'number') throw bad('bad', `file ${i}: size is not a number`);
    const sha = typeof wf.sha256 === 'string' && wf.sha256.length === 2 * HASH_SIZE ? fromHex(wf.sha256) : null;
    if (sha === null) throw bad('bad', `file ${i}: sha256 is not ${2 * HASH_SIZE} hex digits`);
    const blob = typeof wf.chunks === 'string' ? fromBase64(wf.chunks) : null;
    if (blob === null) throw bad('bad', `file ${i}: chunks is not base64`);
    if (blob.length % HASH_SIZE !== 0) throw bad('bad', `file ${i}: chunk hashes are ${blob.length} bytes, not a multiple of ${HASH_SIZE}`);
    if ('exec' in wf && typeof wf.exec !== 'boolean') throw bad('bad', `file ${i}: exec is not a boolean`);
    let hashes;
    if (wf.size > 0) {
      hashes = concat(blob, sha); // the last chunk's hash is the file's
    } else if (blob.length > 0) {
      throw bad('bad', `file ${i}: chunk hashes for an empty file`);
    } else {
      hashes = new Uint8Array(0);
    }
    return { name: wf.name, size: wf.size, sha256: sha, hashes, exec: wf.exec === true };
  });
  const m = build(w.chunk_size, fec, files, dirs, parity);
  if (!equal(m.encoded, b)) throw bad('bad', 'not in the canonical encoding every p2pxfer sender signs');
  return m;
}

/**
 * Builds a manifest for a page that sends, validated exactly as a receiver
 * will check it: files are [{name, size, sha256, chunks: Uint8Array[] (from
 * chain.js's FileHasher), exec}], dirs the empty folders; fec {k, m} and
 * parity (32 bytes per piece) only with Reed-Solomon parity. Dirs are
 * sorted into the canonical order.
 * @returns {Manifest}
 */
export function newManifest(chunkSize, files, dirs = [], fec = null, parity = new Uint8Array(0)) {
  const fs = files.map((f) => ({
    name: f.name,
    size: f.size,
    sha256: Uint8Array.from(f.sha256),
    hashes: concat(...f.chunks),
    exec: !!f.exec,
  }));
  return build(chunkSize, fec, fs, [...dirs], parity);
}
