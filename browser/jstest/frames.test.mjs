// Data channel v3 frames: the table Go's parseFrame is held to as well
// (peer/jsframes_test.go), then the encoders round trip through the parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as fr from '../web/js/frames.js';
import { concat, fromHex, utf8 } from '../web/js/bytes.js';

const table = JSON.parse(readFileSync(new URL('./testdata/frames.json', import.meta.url), 'utf8'));

test('parseFrame accepts and refuses as Go does', () => {
  assert.ok(table.cases.length >= 50);
  for (const c of table.cases) {
    const b = concat(fromHex(c.frame), new Uint8Array(c.repeat ?? 0).fill(c.fill ?? 0));
    let f;
    try {
      f = fr.parseFrame(b);
    } catch (e) {
      assert.ok(e instanceof fr.ProtocolError, `${c.what}: ${e}`);
      assert.equal(c.ok, false, `${c.what}: refused (${e.message}) but Go accepts it`);
      continue;
    }
    assert.equal(c.ok, true, `${c.what}: accepted but Go refuses it`);
    assert.equal(String.fromCharCode(f.type), c.type, c.what);
    if (c.index !== undefined) assert.equal(f.index, c.index, c.what);
    if (c.offset !== undefined) assert.equal(f.offset, c.offset, c.what);
    if (c.total !== undefined) assert.equal(f.total, c.total, c.what);
    if (c.dataLen !== undefined) assert.equal(f.data.length, c.dataLen, c.what);
    if (c.list !== undefined) assert.deepEqual(f.list, c.list, c.what);
    if (c.listLen !== undefined) assert.equal(f.list.length, c.listLen, c.what);
    if (c.flags !== undefined) assert.equal(f.flags, c.flags, c.what);
    if (c.file !== undefined) assert.equal(f.file, c.file, c.what);
    if (c.why !== undefined) assert.equal(f.why, c.why, c.what);
  }
});

test('constants match Go', () => {
  assert.equal(fr.DATA_CHANNEL_LABEL, 'p2pxfer/3');
  assert.equal(fr.MAX_FRAME, 65536);
  assert.equal(fr.MAX_LIST, 16383);
  assert.equal(fr.MAX_DATA_PAYLOAD, 65527);
});

test('encoders round trip through parseFrame', () => {
  const d = fr.parseFrame(fr.dataFrame(9, 1 << 20, utf8('abc')));
  assert.deepEqual([d.type, d.index, d.offset, new TextDecoder().decode(d.data)], [fr.T_DATA, 9, 1 << 20, 'abc']);
  assert.throws(() => fr.dataFrame(0, 0, new Uint8Array(0)));
  assert.throws(() => fr.dataFrame(0, 0, new Uint8Array(fr.MAX_DATA_PAYLOAD + 1)));
  assert.equal(fr.dataFrame(0, 0, new Uint8Array(fr.MAX_DATA_PAYLOAD)).length, fr.MAX_FRAME);

  const idx = Array.from({ length: 2 * fr.MAX_LIST + 5 }, (_, i) => i * 3);
  const lists = fr.listFrames(fr.T_WANT, idx);
  assert.equal(lists.length, 3);
  assert.deepEqual(lists.flatMap((b) => fr.parseFrame(b).list), idx);
  assert.deepEqual(fr.listFrames(fr.T_HAVE, []), []);

  for (const size of [0, 1, fr.MAX_FRAME - 9, fr.MAX_FRAME - 8, 3 * fr.MAX_FRAME + 17]) {
    const whole = new Uint8Array(size).map((_, i) => i * 7);
    const parts = fr.partFrames(fr.T_MANIFEST, whole);
    assert.ok(parts.every((p) => p.length <= fr.MAX_FRAME));
    const a = new fr.Assembler();
    let got = null;
    parts.forEach((p, i) => {
      got = a.add(fr.parseFrame(p));
      assert.equal(got === null, i < parts.length - 1);
    });
    assert.deepEqual(got, whole);
    assert.throws(() => a.add(fr.parseFrame(parts[0])), fr.ProtocolError); // a second whole
  }
  // Parts out of order, or changing their total, are refused.
  const parts = fr.partFrames(fr.T_BITMAP, new Uint8Array(fr.MAX_FRAME * 2));
  assert.throws(() => new fr.Assembler().add(fr.parseFrame(parts[1])), fr.ProtocolError);
  const a = new fr.Assembler();
  a.add(fr.parseFrame(parts[0]));
  const other = fr.partFrames(fr.T_BITMAP, new Uint8Array(fr.MAX_FRAME * 3))[1];
  assert.throws(() => a.add(fr.parseFrame(other)), fr.ProtocolError);

  assert.deepEqual(fr.parseFrame(fr.flagFrame(fr.T_FINISHED, true)), { type: fr.T_FINISHED, flags: 1 });
  assert.deepEqual(fr.parseFrame(fr.flagFrame(fr.T_SERVES, false)), { type: fr.T_SERVES, flags: 0 });
  assert.equal(fr.parseFrame(fr.changedFrame(77)).file, 77);
  // A long reason is cut at a character boundary and still parses.
  const e = fr.parseFrame(fr.errorFrame('✓'.repeat(100)));
  assert.equal(e.why, '✓'.repeat(85));
});

test('piece receiver: whole pieces in order, sizes from the manifest', () => {
  const sizes = [5, 3, 7];
  const pr = new fr.PieceReceiver(sizes.length, (i) => sizes[i]);
  const d = (i, off, s) => fr.parseFrame(fr.dataFrame(i, off, utf8(s)));
  assert.equal(pr.add(d(1, 0, 'ab')), null);
  assert.equal(pr.current, 1);
  assert.deepEqual(pr.add(d(1, 2, 'c')), { index: 1, data: utf8('abc') });
  assert.equal(pr.current, -1);
  assert.deepEqual(pr.add(d(0, 0, '12345')), { index: 0, data: utf8('12345') });
  const bad = [
    [d(3, 0, 'x')], // no such piece
    [d(0, 1, 'x')], // not from its start
    [d(0, 0, '123456')], // longer than the manifest says
    [d(2, 0, 'abc'), d(2, 4, 'x')], // a gap
    [d(2, 0, 'abc'), d(2, 0, 'x')], // a repeat
    [d(2, 0, 'abc'), d(0, 0, 'x')], // another piece before this one is whole
    [d(2, 0, 'abc'), d(2, 3, 'defgh')], // past the end
  ];
  for (const frames of bad) {
    const r = new fr.PieceReceiver(sizes.length, (i) => sizes[i]);
    assert.throws(() => frames.forEach((f) => r.add(f)), fr.ProtocolError);
  }
});
