// A module Web Worker that verifies pieces and keeps the good ones in
// IndexedDB, for a page that is no secure context (the plain http link
// `send` prints for other machines): such a page has no private file
// system, but IndexedDB it has, and what it holds outlives a reload.
// idbstore.js starts one per transfer; db.js says how the records lie.
//
// Every verified chunk is one record, a Blob: Chromium keeps a Blob
// stored in IndexedDB as a file beside the database and hands back a
// handle to that file when it is read, so neither writing nor saving
// holds a file's bytes in the page (an ArrayBuffer would be read back
// whole into memory). The chunk and its 'held' mark are written in one
// transaction: a reload or a crash in the middle loses the chunk, never
// leaves a mark without it.
//
// Messages (every answer carries the request's id):
//
//	{id, op:'open', digest, files, total}  -> {id, held: number[]}   (indices marked held)
//	{id, op:'check', refs}                 -> {id, bad: number[]}    (held chunks that are not
//	                                                                  exactly the chunk: forgotten)
//	{id, op:'piece', ref, data}            -> {id, ok}               (ref as Manifest.chunk() returns it)
//	any of them                            -> {id, error, quota?}    (quota: the browser's storage is full)
//
// A piece that fails verification is not written: ok is false.

import { verifyChunk } from './chain.js';
import { openDB, transferRange, sweep, touch, done } from './db.js';

let db = null;
let digest = '';
let lastTouch = 0;

// How often an ongoing download says it is alive, so that another tab's
// clean-up (db.js sweep) leaves it alone.
const TOUCH_EVERY_MS = 60000;

async function open(m) {
  digest = m.digest;
  db = await openDB();
  await sweep(db, digest);
  await touch(db, { digest, files: m.files, total: m.total });
  lastTouch = Date.now();
  const tx = db.transaction('held', 'readonly');
  const keys = await done(tx, tx.objectStore('held').getAllKeys(transferRange(digest)));
  return { held: keys.map((k) => k[1]) };
}

// check reads every held chunk back and verifies it, as `recv` does with
// the chunks its resume state claims: a record that is missing, of
// another size, unreadable (its file gone from disk) or not the chunk
// any more is forgotten, and fetched again.
async function check({ refs }) {
  const bad = [];
  for (const ref of refs) {
    let ok = false;
    try {
      const tx = db.transaction('chunks', 'readonly');
      const blob = await done(tx, tx.objectStore('chunks').get([digest, ref.index]));
      if (blob instanceof Blob && blob.size === ref.size) {
        ok = verifyChunk(ref, new Uint8Array(await blob.arrayBuffer()));
      }
    } catch {
      ok = false;
    }
    if (!ok) bad.push(ref.index);
  }
  if (bad.length > 0) {
    const tx = db.transaction(['chunks', 'held'], 'readwrite');
    for (const i of bad) {
      tx.objectStore('chunks').delete([digest, i]);
      tx.objectStore('held').delete([digest, i]);
    }
    await done(tx);
  }
  return { bad };
}

async function piece({ ref, data }) {
  if (!(data instanceof Uint8Array) || !verifyChunk(ref, data)) return { ok: false };
  const tx = db.transaction(['chunks', 'held'], 'readwrite', { durability: 'relaxed' });
  tx.objectStore('chunks').put(new Blob([data]), [digest, ref.index]);
  tx.objectStore('held').put(ref.size, [digest, ref.index]);
  await done(tx);
  if (Date.now() - lastTouch > TOUCH_EVERY_MS) {
    lastTouch = Date.now();
    await touch(db, { digest });
  }
  return { ok: true };
}

// One message at a time, in order: a check and the pieces after it
// must not interleave.
let queue = Promise.resolve();

self.onmessage = (ev) => {
  queue = queue.then(() => handle(ev.data ?? {}));
};

async function handle(m) {
  let out;
  try {
    switch (m.op) {
      case 'open': out = await open(m); break;
      case 'check': out = await check(m); break;
      case 'piece': out = await piece(m); break;
      default: out = { error: `unknown op ${m.op}` };
    }
  } catch (e) {
    out = { error: `${e?.name ?? 'Error'}: ${e?.message ?? e}`, quota: e?.name === 'QuotaExceededError' };
  }
  self.postMessage({ id: m.id, ...out });
}
