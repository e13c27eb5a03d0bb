// The frames a source may send while the page checks its manifest are
// bounded in count and bytes, and piece data is refused outright.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backlog, MAX_BACKLOG_FRAMES, MAX_BACKLOG_BYTES } from '../web/js/backlog.js';
import * as fr from '../web/js/frames.js';
import { Bitmap } from '../web/js/bitmap.js';

test('backlog: the largest have-bitmap and the haves of the time fit', () => {
  const b = new Backlog();
  const bm = new Bitmap(fr.MAX_BITMAP * 8);
  const parts = fr.partFrames(fr.T_BITMAP, bm.bytes());
  for (const f of parts) b.put(f);
  const haves = fr.listFrames(fr.T_HAVE, Array.from({ length: 16383 * 8 }, (_, i) => i));
  for (const f of haves) b.put(f);
  for (let i = 0; i < 100; i++) b.put(fr.changedFrame(0));
  b.put(fr.errorFrame('bye'));
  const n = parts.length + haves.length + 101;
  assert.equal(b.length, n);
  const got = b.take();
  assert.equal(got.length, n);
  assert.equal(got[0], parts[0]);
  assert.equal(b.length, 0);
  assert.equal(b.bytes, 0);
});

test('backlog: a flood of small frames is refused at the count', () => {
  const b = new Backlog();
  const f = fr.changedFrame(3);
  for (let i = 0; i < MAX_BACKLOG_FRAMES; i++) b.put(f);
  assert.throws(() => b.put(f), fr.ProtocolError);
  assert.equal(b.length, MAX_BACKLOG_FRAMES);
});

test("backlog: a seed's haves, one piece a frame, are merged as they come, in order", () => {
  const b = new Backlog();
  const n = 2 * MAX_BACKLOG_FRAMES + 5; // more than the count bound, were they kept apart
  b.put(fr.changedFrame(1));
  for (let i = 0; i < n; i++) b.put(fr.listFrames(fr.T_HAVE, [i])[0]);
  b.put(fr.changedFrame(2));
  b.put(fr.listFrames(fr.T_HAVE, [7, 8])[0]);
  const got = b.take().map((x) => fr.parseFrame(x));
  assert.equal(got[0].file, 1);
  const haves = [];
  let k = 1;
  for (; got[k].type === fr.T_HAVE; k++) haves.push(...got[k].list);
  assert.equal(k - 1, Math.ceil(n / fr.MAX_LIST));
  assert.deepEqual(haves, Array.from({ length: n }, (_, i) => i));
  assert.equal(got[k].file, 2);
  assert.deepEqual(got[k + 1].list, [7, 8]);
  assert.equal(got.length, k + 2);
});

test('backlog: a flood of large frames is refused at the bytes', () => {
  const b = new Backlog();
  const f = fr.listFrames(fr.T_HAVE, Array.from({ length: fr.MAX_LIST }, (_, i) => i))[0];
  let n = 0;
  assert.throws(() => {
    for (let i = 0; i < MAX_BACKLOG_FRAMES; i++) {
      b.put(f);
      n++;
    }
  }, fr.ProtocolError);
  assert.ok(n < MAX_BACKLOG_FRAMES, `${n} frames kept`);
  assert.ok(b.bytes <= MAX_BACKLOG_BYTES && b.bytes + f.length > MAX_BACKLOG_BYTES, `${b.bytes} bytes kept`);
  // Emptied, it takes frames again (a source's backlog is used once, but
  // the bound is on what is held, not on what went through).
  b.take();
  b.put(f);
});

test('backlog: piece data and a second manifest cannot come yet', () => {
  const b = new Backlog();
  assert.throws(() => b.put(fr.dataFrame(0, 0, new Uint8Array(1))), /piece data before/);
  assert.throws(() => b.put(fr.partFrames(fr.T_MANIFEST, new Uint8Array(10))[0]), /second 'M'/);
  assert.equal(b.length, 0);
});
