// inbox.js: one peer's relayed frames, bounded, with one waiter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Inbox, MAX_WAITING } from '../web/js/inbox.js';

test('inbox: frames in order, a waiter woken, a timeout, a flood refused', async () => {
  const ib = new Inbox();
  assert.equal(ib.put('a'), true);
  assert.equal(ib.put('b'), true);
  assert.equal(await ib.next(0), 'a');
  assert.equal(await ib.next(0), 'b');
  const waiting = ib.next(0);
  ib.put('c');
  assert.equal(await waiting, 'c');
  assert.equal(await ib.next(20), undefined);
  for (let i = 0; i < MAX_WAITING; i++) assert.equal(ib.put(i), true);
  assert.equal(ib.put('one too many'), false);
});

test('inbox: closed for good, whenever the wait begins', async () => {
  const ib = new Inbox();
  const waiting = ib.next(0);
  ib.put('kept');
  ib.put('dropped');
  assert.equal(await waiting, 'kept');
  ib.close();
  // A wait begun after close ends at once, not at its timeout (nor never,
  // without one); what came before close is dropped.
  assert.equal(await ib.next(60000), null);
  assert.equal(await ib.next(0), null);
  // A late frame is neither kept nor a flood.
  for (let i = 0; i <= MAX_WAITING; i++) assert.equal(ib.put(i), true);
  assert.equal(await ib.next(0), null);
});
