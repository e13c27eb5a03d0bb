// Where verified pieces go when the page has no private file system: a
// page opened over plain http from another machine (the link `send`
// prints on a LAN) is no secure context, and browsers give such a page
// neither the Origin Private File System nor WebCrypto's digests. Each
// verified chunk becomes a Blob, which the browser's blob storage moves
// to disk as the total grows (Chromium keeps only a bounded amount in
// memory), and a finished file is one Blob over its chunks, in order.
// Nothing survives a reload: the page says so.
//
// The interface is store.js's Store: open, piece, finish, file, close.

/** A Store for pages without the private file system (see above). */
export class BlobStore {
  #worker;
  #next = 1;
  #waiting = new Map();
  #failed = null;
  #parts; // per file: Map offset -> Blob
  #files = null;

  /** @param {import('./manifest.js').Manifest} m */
  constructor(m) {
    this.manifest = m;
    this.persistent = false;
    this.#parts = m.files.map(() => new Map());
    this.#worker = new Worker(new URL('./verifyworker.js', import.meta.url), { type: 'module' });
    this.#worker.onmessage = (ev) => {
      const w = this.#waiting.get(ev.data.id);
      if (!w) return;
      this.#waiting.delete(ev.data.id);
      w.resolve(ev.data);
    };
    this.#worker.onerror = (ev) => {
      this.#failed = new Error(`The page's verification worker failed: ${ev.message || 'unknown error'}`);
      for (const w of this.#waiting.values()) w.reject(this.#failed);
      this.#waiting.clear();
    };
  }

  /** Nothing was kept before: a bitmap with no chunk set. */
  async open() {
    return new Uint8Array(Math.ceil(this.manifest.numChunks / 8));
  }

  /** Verifies chunk i's bytes (in the worker) and keeps them if good. */
  async piece(i, data) {
    if (this.#failed) throw this.#failed;
    const c = this.manifest.chunk(i);
    // Copies: hash and prev are views of the file's whole hash list.
    const ref = { index: c.index, file: c.file, offset: c.offset, size: c.size, hash: c.hash.slice(), prev: c.prev.slice(), last: c.last };
    const id = this.#next++;
    const r = await new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#worker.postMessage({ id, ref, data }, [data.buffer]);
    });
    if (r.ok) this.#parts[c.file].set(c.offset, new Blob([r.data]));
    return r.ok;
  }

  /** Joins each file's chunks, in order, into one Blob. */
  async finish() {
    this.#worker.terminate();
    this.#files = this.#parts.map((parts) => new Blob([...parts.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1])));
    this.#parts = null;
  }

  close() {
    this.#worker.terminate();
    this.#parts = null;
  }

  /** File i as a Blob (after finish). */
  async file(i) {
    return this.#files[i];
  }
}
