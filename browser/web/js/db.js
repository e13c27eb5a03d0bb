// The IndexedDB database where a page that is no secure context keeps
// what it receives (idbworker.js writes, idbstore.js reads), and the
// clean-up of old downloads. One database, "p2pxfer", version 1:
//
//	chunks     [DIGEST, index] -> Blob     the verified bytes of chunk index
//	held       [DIGEST, index] -> size     written in the same transaction as
//	                                        the chunk: the resume bitmap
//	transfers  DIGEST -> {digest, touched, total}
//	                                        when a download was last opened or
//	                                        received a chunk, for the clean-up
//
// DIGEST is the manifest's SHA-256 in hex, as the private file system's
// folder name (storeworker.js): the same files sent again in another room
// resume, and chunks of different file sets never mix.
//
// Downloads do not pile up: a download's records go once every file of
// it was saved, or when the user removes them; and whenever a download
// opens, those of other downloads untouched for MAX_AGE_DAYS go, and
// beyond the MAX_KEPT most recent, those idle for IDLE_MS.

export const DB_NAME = 'p2pxfer';
const DB_VERSION = 1;

/** Days after which an unfinished or unsaved download is removed. */
export const MAX_AGE_DAYS = 7;
/** Downloads kept at most, the one opening included (idle ones beyond go). */
export const MAX_KEPT = 4;
// A download another tab is still receiving touches its record every
// minute: one idle longer than this is not being received.
const IDLE_MS = 10 * 60 * 1000;

/** Opens (creating if need be) the database. */
export function openDB() {
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = indexedDB.open(DB_NAME, DB_VERSION);
    } catch (e) {
      reject(e);
      return;
    }
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('chunks')) db.createObjectStore('chunks');
      if (!db.objectStoreNames.contains('held')) db.createObjectStore('held');
      if (!db.objectStoreNames.contains('transfers')) db.createObjectStore('transfers', { keyPath: 'digest' });
    };
    req.onsuccess = () => {
      const db = req.result;
      // A newer page in another tab wants to upgrade: let it.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = () => reject(req.error ?? new Error('IndexedDB refused to open'));
    req.onblocked = () => reject(new Error('IndexedDB is held by an older page in another tab: close it'));
  });
}

/** The keys of one download's chunks (or held marks). */
export function transferRange(digest) {
  return IDBKeyRange.bound([digest, 0], [digest, Infinity]);
}

/**
 * Resolves once tx has committed, with req's result if req is given;
 * rejects with the reason it aborted (QuotaExceededError when the
 * browser's storage is full).
 */
export function done(tx, req) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(req ? req.result : undefined);
    tx.onabort = () => reject(tx.error ?? req?.error ?? new DOMException('the transaction was aborted', 'AbortError'));
    tx.onerror = (ev) => ev.preventDefault(); // onabort follows with the reason
  });
}

/** Notes that the download digest is alive now (creating its record). */
export async function touch(db, { digest, total }) {
  const tx = db.transaction('transfers', 'readwrite');
  const st = tx.objectStore('transfers');
  const req = st.get(digest);
  req.onsuccess = () => {
    const old = req.result;
    st.put({ digest, touched: Date.now(), total: total ?? old?.total ?? 0 });
  };
  await done(tx);
}

/** Removes every record of the download digest. */
export async function remove(db, digest) {
  const tx = db.transaction(['chunks', 'held', 'transfers'], 'readwrite');
  tx.objectStore('chunks').delete(transferRange(digest));
  tx.objectStore('held').delete(transferRange(digest));
  tx.objectStore('transfers').delete(digest);
  await done(tx);
}

/**
 * Removes the downloads other than keep that are too old, or idle and
 * beyond the most recent MAX_KEPT; resolves with the digests removed.
 */
export async function sweep(db, keep) {
  const tx = db.transaction('transfers', 'readonly');
  const all = await done(tx, tx.objectStore('transfers').getAll());
  const now = Date.now();
  const others = all.filter((t) => t.digest !== keep).sort((a, b) => b.touched - a.touched);
  const gone = others.filter((t, i) => now - t.touched > MAX_AGE_DAYS * 86400000 || (i >= MAX_KEPT - 1 && now - t.touched > IDLE_MS));
  for (const t of gone) await remove(db, t.digest);
  return gone.map((t) => t.digest);
}
