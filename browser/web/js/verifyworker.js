// A module Web Worker that checks chunks off the page's main thread, so
// hashing (SHA-256 in JavaScript, the receiver's main cost) never stalls
// the page. Start it with
//
//	new Worker(new URL('./verifyworker.js', import.meta.url), { type: 'module' })
//
// and post {id, ref, data}: ref as Manifest.chunk() returns it, data a
// Uint8Array (transfer its buffer). It answers {id, ok, data}, handing the
// buffer back (transferred) so the page can write a verified chunk without
// a copy. ok is false for anything that is not exactly the chunk.

import { verifyChunk } from './chain.js';

self.onmessage = (ev) => {
  const { id, ref, data } = ev.data ?? {};
  let ok = false;
  try {
    ok = data instanceof Uint8Array && verifyChunk(ref, data);
  } catch {
    ok = false; // a malformed request is a failed check, never a dead worker
  }
  const transfer = data instanceof Uint8Array ? [data.buffer] : [];
  self.postMessage({ id, ok, data }, transfer);
};
