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

// Files open at once, at most: a tree of many small files must not hold
// a handle (and a file descriptor) per file.
const MAX_OPEN = 32;

let dir = null;
let sizes = [];
const handles = new Map(); // file index -> sync access handle, least recently used first
const dirtyFiles = new Set();
let state = null; // its sync access handle
let have = null;
let digest = null;
let dirty = false;
let saveTimer = null;

async function open({ digest: d, sizes: sz, numChunks }) {
  digest = d;
  sizes = sz;
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
  return { have: have.bytes() };
}

// file returns file i's handle, opening it (at its full size) if need be.
async function file(i) {
  let h = handles.get(i);
  if (h) {
    handles.delete(i); // to the most recently used end
    handles.set(i, h);
    return h;
  }
  if (handles.size >= MAX_OPEN) {
    const [j, old] = handles.entries().next().value;
    old.flush();
    old.close();
    handles.delete(j);
    dirtyFiles.delete(j);
  }
  h = await syncHandle(await dir.getFileHandle(String(i), { create: true }));
  if (h.getSize() !== sizes[i]) h.truncate(sizes[i]);
  handles.set(i, h);
  return h;
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
  for (const i of dirtyFiles) handles.get(i)?.flush();
  dirtyFiles.clear();
  const bm = have.bytes();
  const b = new Uint8Array(32 + bm.length);
  b.set(hexBytes(digest), 0);
  b.set(bm, 32);
  state.write(b, { at: 0 });
  state.flush();
  dirty = false;
}

async function piece({ ref, data }) {
  if (!(data instanceof Uint8Array) || !verifyChunk(ref, data)) return { ok: false };
  const h = await file(ref.file);
  let off = 0;
  while (off < data.length) {
    const n = h.write(data.subarray(off), { at: ref.offset + off });
    if (n <= 0) throw new Error('storage write wrote nothing');
    off += n;
  }
  have.set(ref.index);
  dirty = true;
  dirtyFiles.add(ref.file);
  if (saveTimer === null) saveTimer = setTimeout(save, SAVE_EVERY_MS);
  return { ok: true };
}

// finish saves, makes sure every file exists at its size (empty ones get
// no chunk, so nothing wrote them), and lets go of every file.
async function finish() {
  if (saveTimer !== null) clearTimeout(saveTimer);
  dirty = true;
  save();
  for (const h of handles.values()) h.close();
  handles.clear();
  for (let i = 0; i < sizes.length; i++) {
    if (sizes[i] === 0) await dir.getFileHandle(String(i), { create: true });
  }
  state.close();
  state = null;
  return {};
}

// One message at a time: a piece's handle may be opening when the next
// piece comes, and a file has one sync handle at most.
let queue = Promise.resolve();

self.onmessage = (ev) => {
  queue = queue.then(() => handle(ev.data ?? {}));
};

async function handle(m) {
  let out;
  try {
    switch (m.op) {
      case 'open': out = await open(m); break;
      case 'piece': out = await piece(m); break;
      case 'finish': out = await finish(); break;
      default: out = { error: `unknown op ${m.op}` };
    }
  } catch (e) {
    out = { error: `${e?.name ?? 'Error'}: ${e?.message ?? e}` };
  }
  self.postMessage({ id: m.id, ...out });
}
