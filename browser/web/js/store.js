// The page's side of storeworker.js: where verified pieces of one transfer
// go (the Origin Private File System, never memory), what survived a
// reload, and the finished files to save.

import { toHex } from './bytes.js';

/** A failure of the browser's storage, in words the page can show. */
export class StoreError extends Error {
  constructor(message) {
    super(message);
    this.name = 'StoreError';
  }
}

/**
 * Why this browser cannot receive at all, or "" when it can.
 */
export function storageProblem() {
  if (typeof Worker === 'undefined' || typeof RTCPeerConnection === 'undefined' || typeof WebSocket === 'undefined') {
    return 'This browser lacks what the page needs (WebRTC and Web Workers). Use a recent Chrome, Edge, Firefox or Safari, or the command line: p2pxfer recv.';
  }
  return '';
}

/**
 * Whether the page may keep downloads in the private file system, where
 * they survive a reload. A page opened over plain http from another
 * machine is no secure context and may not: blobstore.js keeps its
 * download instead.
 */
export function opfsAvailable() {
  return (typeof isSecureContext === 'undefined' || isSecureContext) && !!navigator.storage?.getDirectory;
}

export class Store {
  #worker;
  #next = 1;
  #waiting = new Map();
  #failed = null;

  /** @param {import('./manifest.js').Manifest} m */
  constructor(m) {
    this.manifest = m;
    this.persistent = true;
    this.digest = toHex(m.digest);
    this.#worker = new Worker(new URL('./storeworker.js', import.meta.url), { type: 'module' });
    this.#worker.onmessage = (ev) => {
      const w = this.#waiting.get(ev.data.id);
      if (!w) return;
      this.#waiting.delete(ev.data.id);
      if (ev.data.error) w.reject(new StoreError(`The browser's storage failed: ${ev.data.error}`));
      else w.resolve(ev.data);
    };
    this.#worker.onerror = (ev) => {
      this.#failed = new StoreError(`The page's storage worker failed: ${ev.message || 'unknown error'}`);
      for (const w of this.#waiting.values()) w.reject(this.#failed);
      this.#waiting.clear();
    };
  }

  #call(msg, transfer = []) {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#worker.postMessage({ id, ...msg }, transfer);
    });
  }

  /**
   * Opens (or resumes) the transfer's folder after checking there is room
   * for it; resolves with the Bitmap bytes of chunks already verified.
   */
  async open() {
    const m = this.manifest;
    const est = await navigator.storage.estimate?.().catch(() => null);
    if (est && Number.isFinite(est.quota) && est.quota - (est.usage ?? 0) < m.totalSize) {
      // Pieces already here count in usage: only a fresh download can be refused wrongly, and then rightly.
      const have = await this.#haveOnDisk();
      if (!have) {
        throw new StoreError(`This browser lets the page keep ${fmt(est.quota - (est.usage ?? 0))}, and the files need ${fmt(m.totalSize)}. Free some disk space, or use the command line: p2pxfer recv.`);
      }
    }
    navigator.storage.persist?.().catch(() => {}); // best effort: keep it from eviction while it downloads
    const r = await this.#call({ op: 'open', digest: this.digest, sizes: m.files.map((f) => f.size), numChunks: m.numChunks });
    return r.have;
  }

  async #haveOnDisk() {
    try {
      const root = await navigator.storage.getDirectory();
      const top = await root.getDirectoryHandle('p2pxfer');
      await top.getDirectoryHandle(this.digest);
      return true;
    } catch {
      return false;
    }
  }

  /** Verifies chunk i's bytes and writes them if good; resolves with whether they were. */
  async piece(i, data) {
    const c = this.manifest.chunk(i);
    // Copies: hash and prev are views of the file's whole hash list, which
    // postMessage would clone whole for every piece.
    const ref = { index: c.index, file: c.file, offset: c.offset, size: c.size, hash: c.hash.slice(), prev: c.prev.slice(), last: c.last };
    const r = await this.#call({ op: 'piece', ref, data }, [data.buffer]);
    return r.ok;
  }

  /** Flushes everything and lets go of the files, so they can be read. */
  async finish() {
    await this.#call({ op: 'finish' });
    this.#worker.terminate();
  }

  /** Stops the worker without saving more (the page is going away or failed). */
  close() {
    this.#worker.terminate();
  }

  /** Removes the transfer's folder from the private file system (after finish). */
  async forget() {
    const root = await navigator.storage.getDirectory();
    const top = await root.getDirectoryHandle('p2pxfer');
    await top.removeEntry(this.digest, { recursive: true });
  }

  /** File i as a File (after finish), read from the private file system when used. */
  async file(i) {
    const root = await navigator.storage.getDirectory();
    const top = await root.getDirectoryHandle('p2pxfer');
    const dir = await top.getDirectoryHandle(this.digest);
    const fh = await dir.getFileHandle(String(i));
    return fh.getFile();
  }
}

/** Bytes in the units people read. */
export function fmt(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
