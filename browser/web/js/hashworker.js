// A module Web Worker that hashes one file for the page that sends
// (send.js), off the main thread: {id, file (a File), chunkSize} ->
// {id, progress: bytes} as it goes, then {id, sha256, chunks} (chain.js's
// FileHasher: every chunk's hash, the last being the file's SHA-256) or
// {id, error}. A File is a handle: the worker reads it in slices, so
// memory stays at one slice whatever the file's size.

import { FileHasher } from './chain.js';

// How much of the file is read at a time.
const READ_STEP = 4 << 20;

self.onmessage = async (ev) => {
  const { id, file, chunkSize } = ev.data ?? {};
  try {
    const h = new FileHasher(chunkSize);
    let off = 0;
    while (off < file.size) {
      const end = Math.min(off + READ_STEP, file.size);
      h.update(new Uint8Array(await file.slice(off, end).arrayBuffer()));
      off = end;
      self.postMessage({ id, progress: off });
    }
    const { sha256, chunks } = h.finish();
    self.postMessage({ id, sha256, chunks });
  } catch (e) {
    self.postMessage({ id, error: `${e?.name ?? 'Error'}: ${e?.message ?? e}` });
  }
};
