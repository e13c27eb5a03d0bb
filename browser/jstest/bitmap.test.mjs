// Have-bitmaps against chunker.Bitmap's wire form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { V, needGo, h } from './vectors.mjs';
import { Bitmap } from '../web/js/bitmap.js';
import { toHex } from '../web/js/bytes.js';

test('bitmaps: the same bytes as Go, and the same refusals', needGo, () => {
  assert.ok(V.bitmaps.length >= 5);
  for (const v of V.bitmaps) {
    const b = new Bitmap(v.n);
    for (const i of v.set) b.set(i);
    assert.equal(toHex(b.bytes()), v.bytes, `n=${v.n}`);
    const back = Bitmap.fromBytes(v.n, h(v.bytes));
    assert.equal(back.count, b.count);
    for (let i = -1; i <= v.n; i++) assert.equal(back.has(i), b.has(i));
    for (const r of v.refused) assert.throws(() => Bitmap.fromBytes(v.n, h(r)), RangeError, `n=${v.n} ${r}`);
  }
});

test('bitmaps: set, clear and count', () => {
  const b = new Bitmap(20);
  b.set(3);
  b.set(3);
  b.set(19);
  b.set(20);
  b.set(-1);
  b.set(2.5);
  assert.equal(b.count, 2);
  b.clear(3);
  b.clear(3);
  assert.equal(b.count, 1);
  assert.ok(b.has(19) && !b.has(3) && !b.has(20));
  assert.equal(b.length, 20);
  assert.throws(() => new Bitmap(-1), RangeError);
});
