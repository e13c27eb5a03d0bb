// A module Web Worker that verifies pieces and writes the good ones into
// the Origin Private File System, off the page's main thread: SHA-256 in
// JavaScript is the receiver's main cost, and synchronous access handles
// (the fast way to write at an offset) exist only in workers. It is the
// only writer of its transfer's folder (store.js starts one per transfer).
//
// Layout under the origin's private root:
//
//	p2pxfer/DIGEST/0, 1, ...   file i of the manifest, at its full size
//	p2pxfer/DIGEST/state       the have-bitmap of verified chunks (bitmap.js's
//	                           wire form), with the manifest digest before it
//
// DIGEST is the manifest's SHA-256 in hex, so the same files sent again in
// another room resume too, and files of different transfers never mix.
// state is written only after the chunks it lists were flushed, so a
// crash or a reload can lose verified chunks but never list unwritten ones.
//
// Messages (every answer carries the request's id):
//
//	{id, op:'open', digest, sizes, numChunks}  -> {id, have: Uint8Array} or {id, error}
//	{id, op:'piece', ref, data}                -> {id, ok}  (ref as Manifest.chunk() returns it)
//	{id, op:'finish'}                          -> {id}      (flushed, handles closed)
//
// A piece that fails verification is not written: ok is false.

import { verifyChunk } from './chain.js';
import { Bitmap } from './bitmap.js';
import { equal } from './bytes.js';

// How often written chunks are flushed and the state saved: often enough
// that a reload loses little, seldom enough that flushing costs nothing
// next to hashing.
const SAVE_EVERY_MS = 250;

let dir = null;
let handles = [];
let state = null; // its sync access handle
let have = null;
let digest = null;
let dirty = false;
let saveTimer = null;

async function open({ digest: d, sizes, numChunks }) {
  digest = d;
  const root = await navigator.storage.getDirectory();
  const top = await root.getDirectoryHandle('p2pxfer', { create: true });
  dir = await top.getDirectoryHandle(d, { create: true });
  const sh = await dir.getFileHandle('state', { create: true });
  state = await syncHandle(sh);
  have = new Bitmap(numChunks);
  const n = state.getSize();
  const want = 32 + Math.ceil(numChunks / 8);
  if (n === want) {
    const b = new Uint8Array(n);
    state.read(b, { at: 0 });
    try {
      if (equal(b.subarray(0, 32), hexBytes(d))) have = Bitmap.fromBytes(numChunks, b.subarray(32));
    } catch {
      // A state of another shape is no state: start over.
    }
  }
  handles = [];
  for (let i = 0; i < sizes.length; i++) {
    const fh = await dir.getFileHandle(String(i), { create: true });
    const h = await syncHandle(fh);
    if (h.getSize() !== sizes[i]) h.truncate(sizes[i]);
    handles.push(h);
  }
  return { have: have.bytes() };
}

// A tab reloaded a moment ago may still hold the files: its worker lets
// go of them as it ends. Wait for that, a bounded while.
const LOCK_WAIT_MS = 5000;

async function syncHandle(fh) {
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      return await fh.createSyncAccessHandle();
    } catch (e) {
      if (e?.name !== 'NoModificationAllowedError' || Date.now() > until) {
        if (e?.name === 'NoModificationAllowedError') throw new Error('another tab is receiving these files: close it, or wait for it to finish');
        throw e;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function hexBytes(h) {
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return b;
}

function save() {
  saveTimer = null;
  if (!dirty) return;
  for (const h of handles) h.flush();
  const bm = have.bytes();
  const b = new Uint8Array(32 + bm.length);
  b.set(hexBytes(digest), 0);
  b.set(bm, 32);
  state.write(b, { at: 0 });
  state.flush();
  dirty = false;
}

function piece({ ref, data }) {
  if (!(data instanceof Uint8Array) || !verifyChunk(ref, data)) return { ok: false };
  const h = handles[ref.file];
  let off = 0;
  while (off < data.length) {
    const n = h.write(data.subarray(off), { at: ref.offset + off });
    if (n <= 0) throw new Error('storage write wrote nothing');
    off += n;
  }
  have.set(ref.index);
  dirty = true;
  if (saveTimer === null) saveTimer = setTimeout(save, SAVE_EVERY_MS);
  return { ok: true };
}

function finish() {
  if (saveTimer !== null) clearTimeout(saveTimer);
  dirty = true;
  save();
  for (const h of handles) h.close();
  state.close();
  handles = [];
  state = null;
  return {};
}

self.onmessage = async (ev) => {
  const m = ev.data ?? {};
  let out;
  try {
    switch (m.op) {
      case 'open': out = await open(m); break;
      case 'piece': out = piece(m); break;
      case 'finish': out = finish(); break;
      default: out = { error: `unknown op ${m.op}` };
    }
  } catch (e) {
    out = { error: `${e?.name ?? 'Error'}: ${e?.message ?? e}` };
  }
  self.postMessage({ id: m.id, ...out });
};
