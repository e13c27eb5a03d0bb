// The page's side of idbworker.js: where verified pieces go when the
// page is no secure context (no private file system), kept in IndexedDB
// so that a reload resumes and no file sits in memory. db.js says how
// the records lie and when they are removed.
//
// The interface is store.js's Store: open, piece, finish, file, close,
// forget. Where the browser refuses IndexedDB (some private windows do)
// it falls back to blobstore.js, in memory, and says so through
// persistent = false.

import { StoreError, fmt } from './store.js';
import { BlobStore } from './blobstore.js';
import { Bitmap } from './bitmap.js';
import { toHex } from './bytes.js';
import { openDB, transferRange, done, remove, touch } from './db.js';

// Held chunks checked per message to the worker: few enough that their
// refs are small, many enough that the round trips cost nothing.
const CHECK_BATCH = 64;

/** A Store for pages that are no secure context (see above). */
export class IdbStore {
  #worker = null;
  #next = 1;
  #waiting = new Map();
  #failed = null;
  #mem = null; // the BlobStore this falls back to
  #db = null;
  #files = null;
  #stored = 0; // bytes held, for the words when storage is full

  /**
   * @param {import('./manifest.js').Manifest} m
   * @param {{status?: (text: string) => void}} opts status shows what
   *   the store is doing before the download starts (checking what was
   *   kept).
   */
  constructor(m, opts = {}) {
    this.manifest = m;
    this.persistent = true;
    // Saved files need not stay: app.js removes the records once every
    // file was saved.
    this.forgetWhenSaved = true;
    this.digest = toHex(m.digest);
    this.status = opts.status ?? (() => {});
  }

  #call(msg, transfer = []) {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#worker.postMessage({ id, ...msg }, transfer);
    });
  }

  #start() {
    this.#worker = new Worker(new URL('./idbworker.js', import.meta.url), { type: 'module' });
    this.#worker.onmessage = (ev) => {
      const w = this.#waiting.get(ev.data.id);
      if (!w) return;
      this.#waiting.delete(ev.data.id);
      if (ev.data.error) w.reject(Object.assign(new StoreError(`The browser's storage failed: ${ev.data.error}`), { quota: !!ev.data.quota, refused: !!ev.data.refused }));
      else w.resolve(ev.data);
    };
    this.#worker.onerror = (ev) => {
      this.#failed = new StoreError(`The page's storage worker failed: ${ev.message || 'unknown error'}`);
      for (const w of this.#waiting.values()) w.reject(this.#failed);
      this.#waiting.clear();
    };
  }

  #full() {
    const m = this.manifest;
    return new StoreError(`The browser's storage for this page is full: the files need ${fmt(m.totalSize)}, ${fmt(this.#stored)} of it is stored, and ${fmt(m.totalSize - this.#stored)} more does not fit. Free that much disk space, then reload the page: what is stored stays, and the download resumes. Or use the command line: p2pxfer recv.`);
  }

  /**
   * Opens (or resumes) the download's records; resolves with the Bitmap
   * bytes of the chunks held, each read back and verified first.
   */
  async open() {
    const m = this.manifest;
    if (typeof indexedDB === 'undefined') return this.#fallBack();
    this.#start();
    let r;
    try {
      r = await this.#call({ op: 'open', digest: this.digest, total: m.totalSize });
    } catch (e) {
      if (e.quota) throw this.#full();
      if (e.refused) return this.#fallBack();
      throw e;
    }
    const have = new Bitmap(m.numChunks);
    const held = (r.held ?? []).filter((i) => Number.isInteger(i) && i >= 0 && i < m.numChunks);
    if (held.length > 0) {
      let bytes = 0;
      for (const i of held) bytes += m.chunk(i).size;
      this.status(`Checking the ${fmt(bytes)} this browser kept from before…`);
      for (let k = 0; k < held.length; k += CHECK_BATCH) {
        const refs = held.slice(k, k + CHECK_BATCH).map((i) => ref(m, i));
        const { bad } = await this.#call({ op: 'check', refs });
        const no = new Set(bad);
        for (const x of refs) {
          if (no.has(x.index)) continue;
          have.set(x.index);
          this.#stored += x.size;
        }
      }
    }
    return have.bytes();
  }

  // fallBack keeps the download in memory when IndexedDB is refused.
  async #fallBack() {
    this.#worker?.terminate();
    this.#worker = null;
    this.persistent = false;
    this.forgetWhenSaved = false;
    this.#mem = new BlobStore(this.manifest);
    return this.#mem.open();
  }

  /** Verifies chunk i's bytes (in the worker) and stores them if good. */
  async piece(i, data) {
    if (this.#mem) return this.#mem.piece(i, data);
    const c = ref(this.manifest, i);
    let r;
    try {
      r = await this.#call({ op: 'piece', ref: c, data }, [data.buffer]);
    } catch (e) {
      throw e.quota ? this.#full() : e;
    }
    if (r.ok) this.#stored += c.size;
    return r.ok;
  }

  /** Stops the worker and joins each file's records, in order, into one Blob. */
  async finish() {
    if (this.#mem) return this.#mem.finish();
    this.#worker.terminate();
    const m = this.manifest;
    this.#db = await openDB();
    const tx = this.#db.transaction('chunks', 'readonly');
    // Blob handles, not bytes: each refers to the record's file on disk.
    const parts = await done(tx, tx.objectStore('chunks').getAll(transferRange(this.digest)));
    let ok = parts.length === m.numChunks;
    for (let i = 0; ok && i < parts.length; i++) ok = parts[i] instanceof Blob && parts[i].size === m.chunk(i).size;
    if (!ok) {
      throw new StoreError("The received chunks are no longer all in the browser's storage (was the site's data cleared?). Reload the page to fetch what is missing.");
    }
    this.#files = m.files.map((_, f) => {
      const { first, count } = m.fileChunks(f);
      return new Blob(parts.slice(first, first + count));
    });
    await touch(this.#db, { digest: this.digest }).catch(() => {});
  }

  close() {
    this.#worker?.terminate();
    this.#mem?.close();
  }

  /** File i as a Blob (after finish); it stays readable after forget. */
  async file(i) {
    if (this.#mem) return this.#mem.file(i);
    return this.#files[i];
  }

  /** Removes the download's records from the browser's storage (after finish). */
  async forget() {
    if (this.#mem) return;
    this.#db ??= await openDB();
    await remove(this.#db, this.digest);
  }
}

// ref is chunk i as the worker needs it. Copies: hash and prev are views
// of the file's whole hash list, which postMessage would clone whole.
function ref(m, i) {
  const c = m.chunk(i);
  return { index: c.index, file: c.file, offset: c.offset, size: c.size, hash: c.hash.slice(), prev: c.prev.slice(), last: c.last };
}
