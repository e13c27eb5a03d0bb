// Signalling v2 messages against Go's room.Encode/Decode, and sealed
// signalling v3 against the table Go's decodeSignal is held to
// (peer/lane/jssignal_test.go).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { V, needGo } from './vectors.mjs';
import * as sg from '../web/js/signal.js';
import { utf8 } from '../web/js/bytes.js';

const sealedTable = JSON.parse(readFileSync(new URL('./testdata/signal.json', import.meta.url), 'utf8'));

test('room messages: Go\'s encodings decode and re-encode byte for byte', needGo, () => {
  assert.ok(V.roomGood.length >= 15);
  for (const s of V.roomGood) {
    const m = sg.decodeMessage(s);
    assert.equal(sg.encodeMessage(m), s);
    assert.equal(sg.encodeMessage(sg.decodeMessage(utf8(s))), s); // bytes as well as text
  }
  const joined = V.roomGood.map((s) => sg.decodeMessage(s)).find((m) => m.type === 'joined');
  assert.equal(joined.key.length, 32);
  assert.equal(joined.host, 'efghjkmnpqrs');
  assert.deepEqual(joined.ice, [{ urls: ['stun:127.0.0.1:3478'] }]);
});

test('room messages: Go accepts these, so does the page', needGo, () => {
  for (const s of V.roomAccepted) sg.decodeMessage(s);
});

test('room messages: Go refuses these, so does the page', needGo, () => {
  assert.ok(V.roomRejected.length >= 25);
  for (const s of V.roomRejected) {
    assert.throws(() => sg.decodeMessage(s), (e) => e instanceof sg.SignalError, s.slice(0, 80));
  }
});

test('room messages: encoding checks like Go\'s Encode', () => {
  assert.equal(sg.encodeMessage({ type: 'join', v: sg.PROTOCOL_VERSION, room: 'k7m2xpq9' }), '{"type":"join","v":2,"room":"k7m2xpq9"}');
  assert.equal(sg.encodeMessage({ type: 'relay', peer: 'efghjkmnpqrs', data: Uint8Array.of(1, 2, 3) }), '{"type":"relay","peer":"efghjkmnpqrs","data":"AQID"}');
  assert.throws(() => sg.encodeMessage({ type: 'join', room: 'k7m2xpq9' }), sg.SignalError);
  assert.throws(() => sg.encodeMessage({ type: 'relay', peer: 'efghjkmnpqrs', data: new Uint8Array(sg.MAX_DATA_SIZE + 1) }), (e) => e.code === 'too_large');
  assert.throws(() => sg.decodeMessage(`{"type":"left","peer":"efghjkmnpqrs","text":"${'x'.repeat(sg.MAX_MESSAGE_SIZE)}"}`), (e) => e.code === 'too_large');
  assert.equal(sg.codeFatal('peer_gone'), false);
  assert.equal(sg.codeFatal('room_closed'), true);
  assert.ok(sg.validRoomID(sg.normalizeRoomID('  K7M2XPQ9 ')));
  const pw = sg.newPassword();
  assert.match(pw, /^[23456789abcdefghjkmnpqrstuvwxyz]{5}-[23456789abcdefghjkmnpqrstuvwxyz]{5}$/);
});

test('sealed signalling: accepts and refuses as Go\'s decodeSignal', () => {
  assert.ok(sealedTable.cases.length >= 30);
  for (const c of sealedTable.cases) {
    let ok = true;
    try {
      sg.decodeSignal(utf8(c.json));
    } catch (e) {
      assert.ok(e instanceof sg.SignalError, `${c.what}: ${e}`);
      ok = false;
    }
    assert.equal(ok, c.ok, c.what);
  }
  assert.throws(() => sg.decodeSignal(utf8('{"v":2,"t":"bye"}')), (e) => e.code === 'version');
});

test('sealed signalling: the page\'s messages round trip', () => {
  const msgs = [
    { t: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n', lanes: 1 },
    { t: 'cand', cand: { candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 } },
    { t: 'cand', cand: { candidate: '' } },
    { t: 'lanes', lanes: 1 },
    { t: 'bye', why: sg.WHY_NO_PATH },
    { t: 'answer', sdp: 'v=0', info: new Uint8Array(32).fill(7), lanes: 1 },
  ];
  for (const m of msgs) {
    const d = sg.decodeSignal(sg.encodeSignal(m));
    assert.equal(d.v, sg.SIGNAL_VERSION);
    for (const k of Object.keys(m)) assert.deepEqual(d[k], m[k], `${m.t}.${k}`);
  }
  assert.equal(new TextDecoder().decode(sg.encodeSignal({ t: 'offer', sdp: 'a<b', lanes: 1 })), '{"v":6,"t":"offer","sdp":"a\\u003cb","lanes":1}');
});
