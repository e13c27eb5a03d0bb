// Byte helpers shared by the wire and crypto modules. Everything here works
// on Uint8Array and never trusts a length it did not compute itself; the
// modules that parse peer bytes check lengths before calling these.

const enc = new TextEncoder();
// fatal: a name or reason that is not valid UTF-8 is refused, as Go's
// utf8.Valid checks refuse it, instead of being silently repaired.
const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** UTF-8 bytes of s, as Go's []byte(s) has them for valid strings. */
export function utf8(s) {
  return enc.encode(s);
}

/**
 * Decodes strict UTF-8; returns null for invalid input, so callers refuse
 * it as Go's utf8.Valid does rather than showing replacement characters.
 */
export function fromUTF8(b) {
  try {
    return dec.decode(b);
  } catch {
    return null;
  }
}

/**
 * Whether s holds no lone surrogate, so it has a UTF-8 encoding at all
 * (String.prototype.isWellFormed, which older engines lack).
 */
export function wellFormed(s) {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** Concatenates byte arrays into a fresh one. */
export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Compares in time that depends only on the lengths, for MACs and
 * anything else secret: an early exit would tell a forger how many leading
 * bytes were right.
 */
export function equalCT(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Plain equality for public values (hashes of public data, encodings). */
export function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lower-case hex, as Go's %x and hex.EncodeToString print. */
export function toHex(b) {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return s;
}

/** Parses hex of either case; returns null on odd length or a non-hex digit. */
export function fromHex(s) {
  if (typeof s !== 'string' || s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64INV = (() => {
  const t = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) t[B64.charCodeAt(i)] = i;
  return t;
})();

/**
 * Standard padded base64, as Go's encoding/json writes []byte. Built by
 * hand rather than with btoa so that megabytes of chunk hashes need no
 * intermediate binary string.
 */
export function toBase64(b) {
  const parts = [];
  let s = '';
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
    if (s.length >= 1 << 16) {
      parts.push(s);
      s = '';
    }
  }
  const rest = b.length - i;
  if (rest === 1) {
    const n = b[i] << 16;
    s += B64[n >> 18] + B64[(n >> 12) & 63] + '==';
  } else if (rest === 2) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + '=';
  }
  parts.push(s);
  return parts.join('');
}

/**
 * Decodes standard padded base64 strictly: the length must be a multiple
 * of four, padding only at the end, and unused bits zero (Go's strict
 * form), so one byte string has one spelling. Returns null otherwise.
 */
export function fromBase64(s) {
  if (typeof s !== 'string' || s.length % 4 !== 0) return null;
  let pad = 0;
  if (s.endsWith('==')) pad = 2;
  else if (s.endsWith('=')) pad = 1;
  const n = (s.length / 4) * 3 - pad;
  const out = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const last = i + 4 === s.length;
    const v = [0, 0, 0, 0];
    for (let k = 0; k < 4; k++) {
      const c = s.charCodeAt(i + k);
      if (last && c === 61 /* = */ && k >= 4 - pad) continue;
      const x = c < 128 ? B64INV[c] : -1;
      if (x < 0) return null;
      v[k] = x;
    }
    const w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    if (last && pad === 2) {
      if (w & 0xffff) return null;
      out[o++] = w >> 16;
    } else if (last && pad === 1) {
      if (w & 0xff) return null;
      out[o++] = w >> 16;
      out[o++] = (w >> 8) & 255;
    } else {
      out[o++] = w >> 16;
      out[o++] = (w >> 8) & 255;
      out[o++] = w & 255;
    }
  }
  return out;
}

/** Big-endian uint32 at off; the caller has checked off+4 <= b.length. */
export function getU32(b, off) {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

/** Writes v as big-endian uint32 at off. */
export function putU32(b, off, v) {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 255;
  b[off + 2] = (v >>> 8) & 255;
  b[off + 3] = v & 255;
}

/** Big-endian uint64 at off, as a BigInt (sequence numbers use all 64 bits). */
export function getU64(b, off) {
  return (BigInt(getU32(b, off)) << 32n) | BigInt(getU32(b, off + 4));
}

/** Writes the BigInt v as big-endian uint64 at off. */
export function putU64(b, off, v) {
  putU32(b, off, Number((v >> 32n) & 0xffffffffn));
  putU32(b, off + 4, Number(v & 0xffffffffn));
}

/** Random bytes from the platform CSPRNG (WebCrypto, in browsers and node). */
export function randomBytes(n) {
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return b;
}
