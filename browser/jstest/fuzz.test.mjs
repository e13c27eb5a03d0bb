// Mutation fuzzing of every decoder of peer input, with a fixed seed so a
// failure reproduces: whatever the bytes, a decoder either returns or
// throws its own error type (never a TypeError or RangeError from deep
// inside, which would mean an unchecked length), and what it returns
// re-encodes to the input where the format is canonical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { V, needGo, h } from './vectors.mjs';
import * as fr from '../web/js/frames.js';
import * as mf from '../web/js/manifest.js';
import * as sg from '../web/js/signal.js';
import * as c from '../web/js/cpace.js';
import { Session } from '../web/js/seal.js';
import { concat, fromHex, utf8 } from '../web/js/bytes.js';

// xorshift32: deterministic, so a failing input can be regenerated.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

function mutate(r, b) {
  const out = Array.from(b);
  const n = 1 + r(4);
  for (let k = 0; k < n; k++) {
    switch (r(5)) {
      case 0: if (out.length) out[r(out.length)] = r(256); break;
      case 1: if (out.length) out.splice(r(out.length), 1 + r(8)); break;
      case 2: out.splice(r(out.length + 1), 0, ...Array.from({ length: 1 + r(8) }, () => r(256))); break;
      case 3: if (out.length) out[r(out.length)] ^= 1 << r(8); break;
      case 4: out.length = r(out.length + 1); break;
    }
  }
  return Uint8Array.from(out);
}

const ITER = 1500; // a few seconds at most on a loaded 2-core machine

test('fuzz parseFrame', () => {
  const table = JSON.parse(readFileSync(new URL('./testdata/frames.json', import.meta.url), 'utf8'));
  const seeds = table.cases.filter((x) => !x.repeat).map((x) => fromHex(x.frame));
  const r = rng(1);
  for (let i = 0; i < ITER * 5; i++) {
    const b = mutate(r, seeds[r(seeds.length)]);
    try {
      const f = fr.parseFrame(b);
      if (f.data) assert.ok(f.data.length <= b.length);
      if (f.total !== undefined) assert.ok(f.offset + f.data.length <= f.total);
    } catch (e) {
      assert.ok(e instanceof fr.ProtocolError, `${e} for ${Buffer.from(b).toString('hex')}`);
    }
  }
});

test('fuzz handshake frames and sealed frames', () => {
  const p = { room: 'abcdefgh', initiator: '23456789abcd', responder: 'efghjkmnpqrs' };
  const a = c.startInitiator('pw', p);
  const b = c.respond('pw', p, a.hello);
  const { session, confirm } = a.initiator.finish(b.reply);
  const rs = b.responder.finish(confirm);
  const sealed = rs.seal(utf8('{"v":6,"t":"bye"}'));
  const seeds = [a.hello, b.reply, confirm, sealed, c.abortFrame(1)];
  const r = rng(2);
  for (let i = 0; i < 150; i++) {
    const x = mutate(r, seeds[r(seeds.length)]);
    const own = (e) => e instanceof c.PakeError || assert.fail(`${e} for ${Buffer.from(x).toString('hex')}`);
    try { c.frameKind(x); } catch (e) { own(e); }
    try { c.respond('pw', p, x); } catch (e) { own(e); }
    try { c.startInitiator('pw', p).initiator.finish(x); } catch (e) { own(e); }
    try { session.open(x); } catch (e) { own(e); }
  }
  assert.ok(new Session(true, new Uint8Array(32), new Uint8Array(32)));
});

test('fuzz signalling messages', () => {
  const sealedTable = JSON.parse(readFileSync(new URL('./testdata/signal.json', import.meta.url), 'utf8'));
  const seeds = [...sealedTable.cases.map((x) => utf8(x.json)), ...(V ? V.roomGood.map(utf8) : [])];
  const r = rng(3);
  for (let i = 0; i < ITER; i++) {
    const x = mutate(r, seeds[r(seeds.length)]);
    for (const dec of [sg.decodeSignal, sg.decodeMessage]) {
      try {
        dec(x);
      } catch (e) {
        assert.ok(e instanceof sg.SignalError, `${e} for ${new TextDecoder().decode(x)}`);
      }
    }
  }
});

test('fuzz manifest decoding', needGo, async () => {
  const body = h(V.manifest.signed).subarray(64);
  const seeds = [body, ...V.badManifests.map((b) => h(b.signed).subarray(64)), ...['null', '[]', '3', '"x"', '{}'].map(utf8)];
  const r = rng(4);
  for (let i = 0; i < ITER / 4; i++) {
    const x = mutate(r, seeds[r(seeds.length)]);
    try {
      const m = mf.decodeManifest(x);
      assert.deepEqual(mf.encodeManifest(m), x); // only the canonical form gets through
    } catch (e) {
      assert.ok(e instanceof mf.ManifestError, `${e.stack} for ${new TextDecoder().decode(x).slice(0, 200)}`);
    }
  }
  // And through the signature check: a mutated signed manifest is forged.
  const signed = h(V.manifest.signed);
  for (let i = 0; i < 50; i++) {
    const x = mutate(r, signed);
    if (x.length === signed.length && x.every((v, k) => v === signed[k])) continue;
    await assert.rejects(mf.openManifest(h(V.manifest.publicKey), V.manifest.room, x), (e) => e instanceof mf.ManifestError);
  }
  assert.ok(concat(body).length === body.length);
});
