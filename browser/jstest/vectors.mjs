// Shared by the JS tests: the vectors Go computed (jscrypto_test.go writes
// them and sets P2PXFER_JS_VECTORS), and helpers to read them. Run alone,
// `node --test browser/jstest/` runs every test that needs no Go values and
// skips the rest with a message saying how to run them.
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { fromHex } from '../web/js/bytes.js';

// Node 18 has WebCrypto only as a module; the page's code uses the global.
globalThis.crypto ??= webcrypto;

const path = process.env.P2PXFER_JS_VECTORS;

/** The Go vectors, or null when the tests run without Go. */
export const V = path ? JSON.parse(readFileSync(path, 'utf8')) : null;

/** Test options that skip a test needing Go's vectors when there are none. */
export const needGo = V ? {} : { skip: 'no Go vectors: run go test ./browser/ -run TestJSAgainstGo' };

/** Hex to bytes, failing loudly on a malformed vector. */
export function h(s) {
  const b = fromHex(s);
  if (b === null) throw new Error(`bad hex in vectors: ${s.slice(0, 20)}`);
  return b;
}

/**
 * A random(n) for the handshake that returns the bytes Go's crypto/rand
 * gave, in order, and fails if asked for more or fewer.
 */
export function stream(hex) {
  const all = h(hex);
  let off = 0;
  const random = (n) => {
    if (off + n > all.length) throw new Error('handshake read more randomness than Go did');
    const out = all.slice(off, off + n);
    off += n;
    return out;
  };
  random.done = () => off === all.length;
  return random;
}
