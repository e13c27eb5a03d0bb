// The serving side's pure logic (seed.js): which relay frames start a
// session, and one receiver's request queue, with real handshake frames
// and Go's bounds (peer/serve.go).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import './vectors.mjs';
import { relayAction, RequestQueue, MAX_OUTSTANDING, MAX_SESSIONS, HOST_SLOTS, MAX_FAILURES } from '../web/js/seed.js';
import * as c from '../web/js/cpace.js';
import { Session } from '../web/js/seal.js';

test('seed: only a Hello starts a session, and one too many is told busy', () => {
  const params = { room: 'abcdefgh', initiator: 'abcdefghjkmn', responder: 'pqrstuvwxyz2' };
  const { hello } = c.startInitiator('k7m2x-pq9fd', params);
  assert.equal(relayAction(false, hello, 0, MAX_SESSIONS, false), 'start');
  assert.equal(relayAction(false, hello, MAX_SESSIONS - 1, MAX_SESSIONS, false), 'start');
  assert.equal(relayAction(false, hello, MAX_SESSIONS, MAX_SESSIONS, false), 'busy');
  // A Hello from a peer whose session runs: it started over.
  assert.equal(relayAction(true, hello, MAX_SESSIONS, MAX_SESSIONS, false), 'restart');
  assert.equal(relayAction(true, hello, 1, MAX_SESSIONS, true), 'deliver');
  assert.equal(relayAction(false, hello, 0, MAX_SESSIONS, true), 'ignore');
  // A Hello of another version starts a session, which answers ABORT_VERSION.
  const v2 = Uint8Array.from(hello);
  v2[1] = c.PAKE_VERSION + 1;
  assert.equal(relayAction(false, v2, 0, MAX_SESSIONS, false), 'start');
  // What a session that ended may still get from its peer starts nothing:
  // sealed signalling, its confirm, an abort, garbage.
  const sealed = new Session(true, new Uint8Array(32), new Uint8Array(32)).seal(new Uint8Array(10));
  for (const b of [sealed, Uint8Array.of(c.KIND_CONFIRM, ...new Uint8Array(32)), c.abortFrame(c.ABORT_OTHER),
    Uint8Array.of(c.KIND_HELLO, c.PAKE_VERSION, 1, 2), new Uint8Array(0), Uint8Array.of(9)]) {
    assert.equal(relayAction(false, b, 0, MAX_SESSIONS, false), 'ignore', toString(b));
    assert.equal(relayAction(true, b, 0, MAX_SESSIONS, false), 'deliver');
  }
  // The server's slots bind before the page's own bound, as send's.
  assert.ok(HOST_SLOTS < MAX_SESSIONS);
  assert.equal(MAX_FAILURES, 10);
});

function toString(b) {
  return Buffer.from(b).toString('hex');
}

test('seed: requests in order, cancels take back one each', () => {
  const q = new RequestQueue(10, () => true);
  q.want([3, 1, 3, 9]);
  assert.equal(q.length, 4);
  q.cancel([3]);
  assert.equal(q.take(), 1); // the first 3 was cancelled
  assert.equal(q.take(), 3);
  assert.equal(q.take(), 9);
  assert.equal(q.take(), -1);
  q.want([0]);
  q.cancel([0, 0, 0]);
  assert.equal(q.take(), -1);
});

test('seed: every index a receiver sends is checked', () => {
  const offered = (p) => p !== 4;
  const q = new RequestQueue(10, offered);
  for (const bad of [10, 2 ** 32 - 1, -1, 1.5]) {
    assert.throws(() => q.want([bad]), /protocol error: piece/);
    assert.throws(() => q.cancel([bad]), /protocol error: piece/);
  }
  assert.throws(() => q.want([4]), /which we do not offer/);
  assert.equal(q.length, 0);
});

test('seed: a receiver\'s requests and cancels cannot grow the queue', () => {
  const n = 1 << 20;
  const q = new RequestQueue(n, () => true);
  // Cancels of pieces never asked for are nothing: they do not pile up,
  // nor cancel a later request.
  for (let p = 0; p < n; p += 1) q.cancel([p]);
  q.want([5, 6]);
  assert.equal(q.take(), 5);
  assert.equal(q.take(), 6);
  // At most MAX_OUTSTANDING wait.
  const many = Array.from({ length: MAX_OUTSTANDING }, (_, i) => i);
  q.want(many);
  assert.throws(() => q.want([0]), /more than 4096 outstanding requests/);
  for (const p of many) assert.equal(q.take(), p);
  assert.equal(q.take(), -1);
  // Taken, they make room again.
  q.want(many);
  assert.equal(q.length, MAX_OUTSTANDING);
});
