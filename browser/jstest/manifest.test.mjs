// The signed manifest and chunk chaining against Go: a tree hashed by
// chunker.OpenTree and signed by peer.SignManifest, hostile variants Go's
// DecodeManifest refuses, and every chunk verified from its chaining value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { V, needGo, h } from './vectors.mjs';
import * as mf from '../web/js/manifest.js';
import { FileHasher, INITIAL_CHAIN, chainValue, resumeChain, verifyChunk, verifyPiece } from '../web/js/chain.js';
import { concat, toHex, utf8 } from '../web/js/bytes.js';
import { ed25519, sha256 } from '../web/vendor/noble.js';

const hx = toHex;

test('chain: resuming SHA-256 is SHA-256', () => {
  const data = new Uint8Array(5 * 64 + 7).map((_, i) => i * 31);
  const whole = sha256(data);
  // Resume from the chaining value after 3 blocks.
  const a = resumeChain(INITIAL_CHAIN, 0);
  a.update(data.subarray(0, 192));
  const mid = chainValue(a);
  const b = resumeChain(mid, 192);
  b.update(data.subarray(192));
  assert.equal(hx(b.digest()), hx(whole));
  const partial = resumeChain(INITIAL_CHAIN, 0).update(data.subarray(0, 100));
  assert.throws(() => chainValue(partial));
  assert.throws(() => resumeChain(INITIAL_CHAIN, 100));
  assert.throws(() => resumeChain(INITIAL_CHAIN, -64));
  assert.throws(() => resumeChain(INITIAL_CHAIN.subarray(1), 0));
});

test('chain: resuming far into a file (bit length beyond 32 bits) as Go does', needGo, () => {
  const f = V.chainFar;
  const r = resumeChain(h(f.prev), f.offset);
  r.update(h(f.data));
  assert.equal(hx(chainValue(r)), f.chain);
  r.update(Uint8Array.of(1, 2, 3));
  assert.equal(hx(r.digest()), f.digest);
});

test('manifest: Go-signed tree opens, decodes and indexes as in Go', needGo, async () => {
  const v = V.manifest;
  const key = h(v.publicKey);
  const signed = h(v.signed);
  for (const webcrypto of [true, false]) {
    const m = await mf.openManifest(key, v.room, signed, { webcrypto });
    assert.equal(hx(m.digest), v.digest);
    assert.equal(m.chunkSize, v.chunkSize);
    assert.equal(m.numChunks, v.numChunks);
    assert.equal(m.numParity, v.numParity);
    assert.equal(m.numPieces, v.numChunks + v.numParity);
    assert.equal(m.totalSize, v.totalSize);
    assert.deepEqual(m.dirs, v.dirs);
    assert.deepEqual(m.fec, { k: 2, m: 1 });
    assert.equal(m.files.length, v.files.length);
    v.files.forEach((f, i) => {
      const g = m.files[i];
      assert.equal(g.name, f.name);
      assert.equal(g.size, f.size);
      assert.equal(hx(g.sha256), f.sha256);
      assert.equal(g.exec, f.exec, f.name);
      assert.deepEqual(m.fileChunks(i), { first: f.first, count: f.count });
    });
    for (const c of v.chunks) {
      const ref = m.chunk(c.index);
      assert.equal(ref.file, c.file);
      assert.equal(ref.offset, c.offset);
      assert.equal(ref.size, c.size);
      assert.equal(hx(ref.hash), c.hash);
      assert.equal(hx(ref.prev), c.prev);
      assert.equal(ref.last, c.last);
    }
    assert.throws(() => m.chunk(v.numChunks), RangeError);
    assert.throws(() => m.chunk(-1), RangeError);
    assert.throws(() => m.chunk(1.5), RangeError);
    assert.equal(hx(mf.encodeManifest(m)), hx(signed.subarray(64)));
  }
  assert.ok(v.files.some((f) => f.exec) && v.files.some((f) => f.size === 0));
});

test('chain: every chunk Go hashed verifies, and nothing else does', needGo, async () => {
  const v = V.manifest;
  const m = await mf.openManifest(h(v.publicKey), v.room, h(v.signed));
  for (const c of v.chunks) {
    const ref = m.chunk(c.index);
    const data = h(c.data);
    assert.ok(verifyChunk(ref, data), `chunk ${c.index}`);
    const t = Uint8Array.from(data);
    t[t.length >> 1] ^= 1;
    assert.ok(!verifyChunk(ref, t), `tampered chunk ${c.index}`);
    assert.ok(!verifyChunk(ref, data.subarray(1)), `short chunk ${c.index}`);
    // A right chunk in the wrong place of the chain fails too.
    if (c.index > 0 && v.chunks[c.index - 1].size === c.size) assert.ok(!verifyChunk(m.chunk(c.index - 1), data));
  }
  // The sender's side: hashing each file front to back gives Go's hashes.
  v.files.forEach((f, fi) => {
    const parts = v.chunks.filter((c) => c.file === fi);
    for (const step of [1000, 64, 4096 * 5 + 3]) {
      const fh = new FileHasher(v.chunkSize);
      const data = concat(...parts.map((c) => h(c.data)));
      for (let o = 0; o < data.length; o += step) fh.update(data.subarray(o, o + step));
      const { sha256: sum, chunks } = fh.finish();
      assert.equal(hx(sum), f.sha256);
      assert.deepEqual(chunks.map(hx), parts.map((c) => c.hash));
    }
  });
});

test('manifest: signature bound to key, room and bytes', needGo, async () => {
  const v = V.manifest;
  const key = h(v.publicKey);
  const signed = h(v.signed);
  const forged = (e) => e instanceof mf.ManifestError && e.code === 'forged';
  for (const webcrypto of [true, false]) {
    const o = { webcrypto };
    await assert.rejects(mf.openManifest(key, V.signatureRoom, signed, o), forged);
    for (const i of [0, 63, 64, signed.length - 1]) {
      const t = Uint8Array.from(signed);
      t[i] ^= 1;
      await assert.rejects(mf.openManifest(key, v.room, t, o), forged, `byte ${i}`);
    }
    const other = Uint8Array.from(key);
    other[0] ^= 1;
    await assert.rejects(mf.openManifest(other, v.room, signed, o), forged);
    await assert.rejects(mf.openManifest(key, v.room, signed.subarray(0, 63), o), forged);
    await assert.rejects(mf.openManifest(key.subarray(1), v.room, signed, o), forged);
    await assert.rejects(mf.openManifest(null, v.room, signed, o), forged);
    // S + L: the same signature with a non-canonical scalar, which Go refuses.
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signed[i]);
    s += L;
    if (s < 1n << 256n) {
      const t = Uint8Array.from(signed);
      for (let i = 32; i < 64; i++, s >>= 8n) t[i] = Number(s & 255n);
      await assert.rejects(mf.openManifest(key, v.room, t, o), forged);
    }
  }
});

test('manifest: signing in the page matches Go (the page as a sender)', needGo, () => {
  const v = V.manifest;
  const seed = h(v.seed);
  assert.equal(hx(ed25519.getPublicKey(seed)), v.publicKey);
  const signed = h(v.signed);
  assert.equal(hx(mf.signManifest(seed, v.room, signed.subarray(64))), v.signed);
  const k = mf.newManifestKey();
  assert.equal(k.secretKey.length, 32);
  assert.equal(k.publicKey.length, 32);
});

test('manifest: built in the page is what Go encodes', needGo, async () => {
  const v = V.manifest;
  const m = await mf.openManifest(h(v.publicKey), v.room, h(v.signed));
  const files = m.files.map((f) => ({
    name: f.name, size: f.size, sha256: f.sha256, exec: f.exec,
    chunks: Array.from({ length: f.hashes.length / 32 }, (_, k) => f.hashes.subarray(32 * k, 32 * k + 32)),
  }));
  const again = mf.newManifest(m.chunkSize, files, [...m.dirs].reverse(), m.fec, m.parity);
  assert.equal(hx(mf.encodeManifest(again)), hx(h(v.signed).subarray(64)));
  assert.equal(hx(again.digest), v.digest);
});

test('manifest: every hostile variant refused as Go refuses it', needGo, async () => {
  const v = V.manifest;
  assert.ok(V.badManifests.length > 30);
  for (const b of V.badManifests) {
    await assert.rejects(mf.openManifest(h(v.publicKey), v.room, h(b.signed)), (e) => {
      assert.ok(e instanceof mf.ManifestError, `${b.what}: ${e}`);
      assert.equal(e.code, b.code, `${b.what}: ${e.message}`);
      return true;
    }, b.what);
  }
});

test('manifest: non-canonical spellings are refused', needGo, () => {
  const body = h(V.manifest.signed).subarray(64);
  const text = new TextDecoder().decode(body);
  const variants = [
    text.replace('{"v":3,', '{ "v":3,'),
    text.replace('"v":3', '"v":3.0'),
    text.replace('"chunk_size":16384', '"chunk_size":1.6384e4'),
    text.replace('"v":3,', '"V":3,"v":3,'),
    text.replace('"exec":true', '"exec":true,"exec":true'),
    text.replace('"size":1,', '"size":1,"exec":false,'),
    text.replace('\\u003c', '<'),
    `${text}\n`,
  ];
  for (const s of variants) {
    assert.notEqual(s, text);
    assert.throws(() => mf.decodeManifest(utf8(s)), (e) => e instanceof mf.ManifestError, s.slice(0, 60));
  }
  assert.equal(hx(mf.decodeManifest(body).digest), V.manifest.digest);
});

test('manifest: JSON that is no manifest object', () => {
  for (const s of ['null', '[]', '3', '"x"', '{}', '{"v":3}', '{"v":"3"}', '', '\u00ff', '{"v":3,"chunk_size":16384,"files":null}']) {
    assert.throws(() => mf.decodeManifest(utf8(s)), (e) => e instanceof mf.ManifestError, s);
  }
  assert.throws(() => mf.decodeManifest(Uint8Array.of(0x7b, 0xff, 0x7d)), (e) => e instanceof mf.ManifestError);
  assert.throws(() => mf.decodeManifest(utf8('{"v":2}')), (e) => e.code === 'version');
});

test('manifest: names as Go checks them', () => {
  const ok = ['a', 'a/b', 'ünï ✓', 'a..b', '.hidden', 'x.p2pxfer-partial', 'a'.repeat(255), '😀'];
  for (const n of ok) assert.equal(mf.nameProblem(n) || mf.reservedProblem(n), '', n);
  const bad = ['', '..', '.', 'a//b', '/a', 'a/', 'a\\b', 'a\u0000', 'a\u009f', 'a\u2029', 'a\u202a', 'a\u2069', 'a'.repeat(256),
    'x.P2PXFER-TMP', 'a\ud800', `${'a/'.repeat(2048)}a`];
  for (const n of bad) assert.notEqual(mf.nameProblem(n) || mf.reservedProblem(n), '', n);
});

test('pieces: sizes, hashes and stripes as Go\'s Manifest.Piece; parity verifies', needGo, async () => {
  const v = V.manifest;
  const m = await mf.openManifest(h(v.publicKey), v.room, h(v.signed));
  assert.equal(v.pieces.length, m.numPieces);
  assert.ok(v.pieces.some((p) => p.parity && p.size === v.chunkSize));
  assert.ok(v.pieces.some((p) => p.parity && p.size < v.chunkSize)); // a stripe of short chunks
  v.pieces.forEach((pv, i) => {
    const p = m.piece(i);
    assert.equal(p.size, pv.size, `piece ${i}`);
    assert.equal(hx(p.hash), pv.hash, `piece ${i}`);
    assert.equal(p.parity, pv.parity, `piece ${i}`);
    assert.equal(p.stripe, pv.stripe, `piece ${i}`);
    const data = pv.parity ? h(pv.data) : h(v.chunks[i].data);
    assert.ok(verifyPiece(p, data), `piece ${i}`);
    const t = Uint8Array.from(data);
    t[t.length - 1] ^= 4;
    assert.ok(!verifyPiece(p, t), `tampered piece ${i}`);
    assert.ok(!verifyPiece(p, concat(data, Uint8Array.of(0))), `long piece ${i}`);
  });
  assert.throws(() => m.piece(m.numPieces), RangeError);
  assert.throws(() => m.piece(-1), RangeError);
});
