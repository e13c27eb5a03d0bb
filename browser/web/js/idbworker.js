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
//	{id, op:'open', digest, total}         -> {id, held: number[]}   (indices marked held)
//	{id, op:'check', refs}                 -> {id, bad: number[]}    (held chunks that are not
//	                                                                  exactly the chunk: forgotten)
//	{id, op:'piece', ref, data}            -> {id, ok}               (ref as Manifest.chunk() returns it)
//	any of them                            -> {id, error, quota, refused}  (quota: the browser's storage
//	                                                                  is full; refused: IndexedDB is)
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
  try {
    db = await openDB();
  } catch (e) {
    // Some private windows refuse IndexedDB: the page keeps the download
    // in memory instead (idbstore.js).
    throw Object.assign(new Error(`IndexedDB refused to open: ${e?.name ?? 'Error'}: ${e?.message ?? e}`), { refused: true });
  }
  await sweep(db, digest);
  await touch(db, { digest, total: m.total });
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

// piece verifies a chunk at once (in message order) and resolves with
// the answer once it is stored. Stores are group commits: the chunks
// verified while one transaction commits go together in the next, each
// with its held mark, so a transaction's cost is shared and hashing never
// waits for the disk. What waits is bounded by the page's request window.
function piece({ ref, data }) {
  if (!(data instanceof Uint8Array) || !verifyChunk(ref, data)) return { ok: false };
  return new Promise((resolve, reject) => {
    next ??= { items: [], waiters: [] };
    next.items.push({ index: ref.index, size: ref.size, data });
    next.waiters.push({ resolve: () => resolve({ ok: true }), reject });
    commit();
  });
}

let next = null; // the chunks waiting for the transaction in flight
let writing = false;

function commit() {
  if (writing || !next) return;
  const b = next;
  next = null;
  writing = true;
  const tx = db.transaction(['chunks', 'held'], 'readwrite', { durability: 'relaxed' });
  const chunks = tx.objectStore('chunks');
  const held = tx.objectStore('held');
  // Each Blob is made as it is put and referred to by nothing after:
  // its wrapper dies young, so the browser soon lets go of its bytes
  // (held in the browser's memory while a wrapper lives), and the bytes
  // here go with the batch.
  for (const c of b.items) {
    chunks.put(new Blob([c.data]), [digest, c.index]);
    held.put(c.size, [digest, c.index]);
  }
  b.items = null;
  done(tx)
    .then(async () => {
      if (Date.now() - lastTouch > TOUCH_EVERY_MS) {
        lastTouch = Date.now();
        await touch(db, { digest });
      }
    })
    .then(() => b.waiters.forEach((w) => w.resolve()), (e) => b.waiters.forEach((w) => w.reject(e)))
    .finally(() => {
      writing = false;
      commit();
    });
}

// One message at a time, in order: a check and the pieces after it
// must not interleave.
let queue = Promise.resolve();

// A piece holds the queue only while it is verified, not while stored.
self.onmessage = (ev) => {
  const m = ev.data ?? {};
  let stored = null;
  queue = queue.then(async () => {
    try {
      switch (m.op) {
        case 'open': return answer(m, await open(m));
        case 'check': return answer(m, await check(m));
        case 'piece': stored = piece(m); break;
        default: return answer(m, { error: `unknown op ${m.op}` });
      }
    } catch (e) {
      return answer(m, failure(e));
    }
    Promise.resolve(stored).then((out) => answer(m, out), (e) => answer(m, failure(e)));
  });
};

function answer(m, out) {
  self.postMessage({ id: m.id, ...out });
}

function failure(e) {
  return { error: `${e?.name ?? 'Error'}: ${e?.message ?? e}`, quota: e?.name === 'QuotaExceededError', refused: !!e?.refused };
}
