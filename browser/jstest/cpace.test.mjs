// CPace and sealed sessions: the draft's published vectors, then byte-exact
// handshakes and sealed frames against Go's pake, both roles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { V, needGo, h, stream } from './vectors.mjs';
import * as c from '../web/js/cpace.js';
import { Session, MAX_PLAINTEXT } from '../web/js/seal.js';
import { ristretto255_hasher, bytesToNumberLE } from '../web/vendor/noble.js';
import { toHex, utf8 } from '../web/js/bytes.js';

const hx = (b) => toHex(b);

// draft-irtf-cfrg-cpace, ristretto255/SHA-512 vectors (as in the project's
// reference copy, shared/reference/cpace-ristretto255.md).
const CFRG = {
  prs: '50617373776f7264',
  ci: '0b415f696e69746961746f720b425f726573706f6e646572',
  sid: '7e4b4791d6a8ef019b936c79fb7f2c57',
  gs: '11435061636552697374726574746f3235350850617373776f726464' + '00'.repeat(100) +
    '180b415f696e69746961746f720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f2c57',
  g: '222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56',
  ya: 'da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08',
  Ya: 'd6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157',
  yb: 'd2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d',
  Yb: '3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258',
  K: '80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f',
  tIR: '20d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b915703414461203ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f725803414462',
  iskIR: 'b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dcae7b35cd2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c3fa2068af7900447',
  tOC: '6f6320d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b915703414461203ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f725803414462',
  iskOC: '544199d71f62f8d9a1fee55727e24fe4a45844593c2b6013c4fa3969d0e5debb2244675c0b43397cbb68d342b01fc0f98fc961469a25134de9f0f813c1a57476',
};

// The copy above must be the reference's: every value appears in it.
const refPath = new URL('../../../shared/reference/cpace-ristretto255.md', import.meta.url);
const ref = existsSync(refPath) ? readFileSync(refPath, 'utf8') : null;
test('CPace draft vectors are the reference\'s', ref ? {} : { skip: `no ${refPath.pathname}` }, () => {
  const flat = ref.replace(/\s+/g, '');
  for (const [k, v] of Object.entries(CFRG)) assert.ok(flat.includes(v), `${k} is not in the reference`);
});

test('CPace draft vectors', () => {
  const prs = h(CFRG.prs);
  const ci = h(CFRG.ci);
  const sid = h(CFRG.sid);
  assert.equal(hx(c.generatorString(prs, ci, sid)), CFRG.gs);
  const g = c.calculateGenerator(prs, ci, sid);
  assert.equal(hx(g.toBytes()), CFRG.g);
  const ya = bytesToNumberLE(h(CFRG.ya));
  const yb = bytesToNumberLE(h(CFRG.yb));
  assert.equal(hx(g.multiply(ya).toBytes()), CFRG.Ya);
  assert.equal(hx(g.multiply(yb).toBytes()), CFRG.Yb);
  const k1 = c.scalarMultVfy(ya, h(CFRG.Yb));
  const k2 = c.scalarMultVfy(yb, h(CFRG.Ya));
  assert.equal(hx(k1), CFRG.K);
  assert.equal(hx(k2), CFRG.K);
  const ada = utf8('ADa');
  const adb = utf8('ADb');
  const tir = c.transcriptIR(h(CFRG.Ya), ada, h(CFRG.Yb), adb);
  assert.equal(hx(tir), CFRG.tIR);
  assert.equal(hx(c.deriveISK(sid, k1, tir)), CFRG.iskIR);
  const toc = c.transcriptOC(h(CFRG.Ya), ada, h(CFRG.Yb), adb);
  assert.equal(hx(toc), CFRG.tOC);
  assert.equal(hx(c.deriveISK(sid, k1, toc)), CFRG.iskOC);
  // The symmetric transcript does not depend on who is A.
  assert.equal(hx(c.transcriptOC(h(CFRG.Yb), adb, h(CFRG.Ya), ada)), CFRG.tOC);
});

test('CPace refuses non-canonical and identity shares', () => {
  const y = 12345n;
  const bad = [
    new Uint8Array(32), // the identity
    new Uint8Array(32).fill(0xff), // not a field element
    Uint8Array.from(h(CFRG.Ya)).map((x, i) => (i === 0 ? x | 1 : x)), // negative s
    h(CFRG.Ya).subarray(0, 31),
  ];
  // p + 0, the non-canonical spelling of 0 (and of the identity).
  const p = (1n << 255n) - 19n;
  const pb = new Uint8Array(32);
  for (let i = 0, v = p; i < 32; i++, v >>= 8n) pb[i] = Number(v & 255n);
  bad.push(pb);
  for (const b of bad) {
    assert.throws(() => c.scalarMultVfy(y, b), (e) => e.code === 'bad_point', hx(b));
  }
  const params = { room: 'abcdefgh', initiator: '23456789abcd', responder: 'efghjkmnpqrs' };
  const hello = c.startInitiator('pw', params).hello;
  const idHello = Uint8Array.from(hello);
  idHello.fill(0, 18);
  assert.throws(() => c.respond('pw', params, idHello), (e) => e.code === 'bad_point');
});

test('handshake and sessions in JS, both roles, and their failures', () => {
  const p = { room: 'abcdefgh', initiator: '23456789abcd', responder: 'efghjkmnpqrs' };
  const { initiator, hello } = c.startInitiator('pw', p);
  assert.equal(c.frameKind(hello), c.KIND_HELLO);
  const { responder, reply } = c.respond('pw', p, hello);
  const { session: si, confirm } = initiator.finish(reply);
  assert.throws(() => initiator.finish(reply), (e) => e.code === 'finished');
  const sr = responder.finish(confirm);
  assert.throws(() => responder.finish(confirm), (e) => e.code === 'finished');
  assert.equal(si.initiator, true);
  assert.equal(sr.initiator, false);

  const f0 = si.seal(utf8('one'));
  const f1 = si.seal(utf8('two'));
  assert.equal(new TextDecoder().decode(sr.open(f1)), 'two'); // the relay may drop f0
  assert.throws(() => sr.open(f0), (e) => e.code === 'replay');
  assert.throws(() => sr.open(f1), (e) => e.code === 'replay');
  const f2 = si.seal(new Uint8Array(0));
  const t2 = Uint8Array.from(f2);
  t2[t2.length - 1] ^= 1;
  assert.throws(() => sr.open(t2), (e) => e.code === 'decrypt');
  assert.equal(sr.open(f2).length, 0); // a failed open changed nothing
  // A frame sealed one way never opens the other way (separate keys).
  assert.throws(() => si.open(si.seal(utf8('x'))), (e) => e.code === 'decrypt');
  assert.throws(() => si.seal(new Uint8Array(MAX_PLAINTEXT + 1)), (e) => e.code === 'too_large');
  const maxSeq = Uint8Array.from(f2);
  maxSeq.fill(0xff, 1, 9);
  assert.throws(() => sr.open(maxSeq), (e) => e.code === 'bad_frame');
  assert.throws(() => sr.open(f2.subarray(0, 24)), (e) => e.code === 'bad_frame');
  assert.throws(() => sr.open(c.abortFrame(c.ABORT_BUSY)), (e) => e.code === 'busy' && e.peerAborted);

  // Wrong password: the initiator notices, and its abort tells the responder.
  const a = c.startInitiator('pw', p);
  const b = c.respond('pW', p, a.hello);
  assert.throws(() => a.initiator.finish(b.reply), (e) => {
    assert.equal(c.abortReason(e), c.ABORT_WRONG_PASSWORD);
    return e.code === 'wrong_password' && !e.peerAborted;
  });
  assert.throws(() => b.responder.finish(c.abortFrame(c.ABORT_WRONG_PASSWORD)), (e) => e.code === 'wrong_password' && e.peerAborted);
  // A forged Confirm is a wrong password on the responder's side.
  const a2 = c.startInitiator('pw', p);
  const b2 = c.respond('pw', p, a2.hello);
  const forged = new Uint8Array(33);
  forged[0] = c.KIND_CONFIRM;
  assert.throws(() => b2.responder.finish(forged), (e) => e.code === 'wrong_password');
  // Other params fail like a wrong password.
  const a3 = c.startInitiator('pw', p);
  const b3 = c.respond('pw', { ...p, room: 'abcdefgj' }, a3.hello);
  assert.throws(() => a3.initiator.finish(b3.reply), (e) => e.code === 'wrong_password');
  // A peer's abort is never echoed back.
  assert.equal(c.abortReason(c.abortError(c.ABORT_WRONG_PASSWORD)), c.ABORT_OTHER);

  const v2 = Uint8Array.from(hello);
  v2[1] = 2;
  assert.throws(() => c.respond('pw', p, v2), (e) => e.code === 'version');
  assert.throws(() => c.respond('pw', p, v2.subarray(0, 5)), (e) => e.code === 'version');
  assert.throws(() => c.respond('pw', p, hello.subarray(0, 40)), (e) => e.code === 'bad_frame');
  assert.throws(() => c.respond('', p, hello), (e) => e.code === 'empty_password');
  assert.throws(() => c.startInitiator('', p), (e) => e.code === 'empty_password');
  assert.throws(() => c.respond('pw', p, c.abortFrame(c.ABORT_VERSION)), (e) => e.code === 'version' && e.peerAborted);
  const a4 = c.startInitiator('pw', p);
  assert.throws(() => a4.initiator.finish(hello), (e) => e.code === 'bad_frame');
  assert.throws(() => a4.initiator.finish(reply), (e) => e.code === 'finished'); // one guess per handshake
  assert.throws(() => new Session(true, new Uint8Array(31), new Uint8Array(32)));
});

test('handshake frames: kinds and lengths as Go checks them', needGo, () => {
  assert.ok(V.frameKinds.length > 50);
  for (const { frame, kind } of V.frameKinds) {
    let got;
    try {
      got = c.frameKind(h(frame));
    } catch (e) {
      assert.equal(e.code, 'bad_frame');
      got = -1;
    }
    assert.equal(got, kind, `frame ${frame.slice(0, 8)}… of ${frame.length / 2} bytes`);
  }
});

test('handshakes byte for byte against Go, both roles', needGo, () => {
  assert.ok(V.cpace.length >= 2);
  for (const v of V.cpace) {
    const p = { room: v.room, initiator: v.initiator, responder: v.responder };
    // The page as the receiver: the same randomness makes Go's Hello.
    const ri = stream(v.initRandom);
    const { initiator, hello } = c.startInitiator(v.password, p, ri);
    assert.ok(ri.done(), 'the initiator read what Go read');
    assert.equal(hx(hello), v.hello);
    // The page as the sender, answering Go's Hello.
    const rr = stream(v.respRandom);
    const { responder, reply } = c.respond(v.password, p, h(v.hello), rr);
    assert.ok(rr.done(), 'the responder read what Go read');
    assert.equal(hx(reply), v.reply);
    // Go's Reply verifies here and yields Go's Confirm; Go's Confirm verifies.
    const { session: si, confirm } = initiator.finish(h(v.reply));
    assert.equal(hx(confirm), v.confirm);
    const sr = responder.finish(h(v.confirm));
    // Sealed frames: the same bytes as Go's sessions, and Go's open here.
    v.messages.forEach((m, i) => {
      assert.equal(hx(si.seal(h(m))), v.iToR[i], `initiator frame ${i}`);
      assert.equal(hx(sr.seal(h(m))), v.rToI[i], `responder frame ${i}`);
    });
    const si2 = c.startInitiator(v.password, p, stream(v.initRandom)).initiator.finish(h(v.reply)).session;
    const sr2 = c.respond(v.password, p, h(v.hello), stream(v.respRandom)).responder.finish(h(v.confirm));
    v.messages.forEach((m, i) => {
      assert.equal(hx(sr2.open(h(v.iToR[i]))), m);
      assert.equal(hx(si2.open(h(v.rToI[i]))), m);
    });
    // Go's responder under another password: a wrong password here.
    const { initiator: i3 } = c.startInitiator(v.password, p, stream(v.initRandom));
    assert.throws(() => i3.finish(h(v.wrongReply)), (e) => e.code === 'wrong_password');
    // And a tampered Reply MAC is refused too.
    const tampered = h(v.reply);
    tampered[64] ^= 0x80;
    const { initiator: i4 } = c.startInitiator(v.password, p, stream(v.initRandom));
    assert.throws(() => i4.finish(tampered), (e) => e.code === 'wrong_password');
  }
});

test('ristretto255 one-way map is RFC 9496 (Go\'s FromUniformBytes), not RFC 9380 hash_to_curve', () => {
  // RFC 9496 A.3, the first element derivation vector.
  const input = h('5d1be09e3d0c82fc538112490e35701979d99e06ca3e2b5b54bffe8b4dc772c1' +
    '4d98b696a1bbfb5ca32c436cc61c16563790306c79eaca7705668b47dffe5bb6');
  assert.equal(hx(ristretto255_hasher.deriveToCurve(input).toBytes()), '3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46');
  assert.notEqual(hx(ristretto255_hasher.hashToCurve(input).toBytes()), '3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46');
});

test('ristretto255 one-way map against Go', needGo, () => {
  assert.ok(V.oneWay.length >= 3);
  for (const { in: input, out } of V.oneWay) assert.equal(hx(ristretto255_hasher.deriveToCurve(h(input)).toBytes()), out);
});

test('a responder whose initiator never confirms can be wiped, and is spent', () => {
  const p = { room: 'abcdefgh', initiator: '23456789abcd', responder: 'efghjkmnpqrs' };
  const { initiator, hello } = c.startInitiator('pw', p);
  const { responder, reply } = c.respond('pw', p, hello);
  const { confirm } = initiator.finish(reply);
  responder.wipe();
  assert.throws(() => responder.finish(confirm), (e) => e.code === 'finished');
});
