// The page as a sender (at /send): the files dropped on it are hashed
// into a manifest (hashworker.js, on chain.js, as chunker does), signed with a key made for
// the room (manifest.js), and offered in a new room as `p2pxfer send`
// offers them: the page is the room's host, answers every receiver's
// CPace as the responder, puts its manifest key in each sealed answer, and
// serves pieces straight from the dropped files (seed.js's sessions).
//
//	page (host)                server                     receiver
//	  |-- create{v, key, slots, max_failures} ->|             |
//	  |<- created{room, peer} ----|                           |
//	  |   ... link /r/ROOM#PASSWORD, or p2pxfer recv ROOM ...  |
//	  |<- relay{Hello} -----------|<------- relay{Hello} -----|
//	  |   ... as seed.js from here on ...                      |

import * as sg from './signal.js';
import {
  newManifest, newManifestKey, signManifest, nameProblem, reservedProblem, MAX_FILES, MAX_FILE_SIZE, MAX_CHUNKS,
} from './manifest.js';
import { Seeder, HOST_SLOTS, MAX_FAILURES } from './seed.js';

// As chunker.ChooseChunkSize: 64 KiB chunks, doubled while there would
// be more than 4096 of them (up to 1 MiB), then while more than 65536.
const SWARM_CHUNK = 64 << 10;
const DEFAULT_CHUNK = 1 << 20;
const MAX_CHUNK = 64 << 20;

export function chooseChunkSize(total) {
  // Go divides integers: total/cs > 4096 is false for 4096*cs + 1.
  let cs = SWARM_CHUNK;
  while (cs < DEFAULT_CHUNK && Math.floor(total / cs) > 4096) cs *= 2;
  while (cs < MAX_CHUNK && Math.floor(total / cs) > 65536) cs *= 2;
  return cs;
}

/** A send that cannot go ahead, in words for people. */
export class SendError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SendError';
  }
}

/**
 * Checks the picked files ({name, size}, as File objects have them) before
 * any is read: everything a receiver would refuse in the manifest that
 * does not depend on the contents, so nobody waits for gigabytes to be
 * hashed to learn that a name cannot be sent. Returns {total, chunkSize};
 * throws SendError in words for people.
 */
export function planSend(files, dirs = []) {
  if (files.length === 0 && dirs.length === 0) throw new SendError('Choose at least one file.');
  if (files.length > MAX_FILES) throw new SendError(`${files.length} files are more than one room holds (${MAX_FILES}).`);
  const names = new Set();
  let total = 0;
  for (const f of files) {
    const why = nameProblem(f.name) || reservedProblem(f.name);
    if (why) throw new SendError(`${JSON.stringify(f.name)} cannot be sent: its name ${why}. Rename it.`);
    if (names.has(f.name)) throw new SendError(`Two files are named ${f.name}: send them one at a time, or rename one.`);
    names.add(f.name);
    if (!Number.isSafeInteger(f.size) || f.size < 0 || f.size > MAX_FILE_SIZE) throw new SendError(`${f.name} is too large to send.`);
    total += f.size;
  }
  const chunkSize = chooseChunkSize(total);
  const chunks = files.reduce((n, f) => n + Math.ceil(f.size / chunkSize), 0);
  if (chunks > MAX_CHUNKS) throw new SendError('These files are too large to send together: send fewer at a time.');
  return { total, chunkSize };
}

/**
 * Hashes files (File objects, sent under their names, or {file, name}
 * with name a path in a folder: folders.js's Selection), builds and signs
 * their manifest, with dirs the empty folders, in a new room on the
 * server that connect() opens a WebSocket to (it resolves with the
 * socket open), and serves them until the socket closes. It
 * connects only once every file is hashed: a server closes a connection
 * that has not opened a room within seconds (its handshake timeout),
 * and hashing takes as long as the files are large.
 * ui: hashing(done, total), ready({room, password}),
 * served(n), failed(n) (password handshakes failed so far), closed(why)
 * (the page closed the room: too many wrong passwords). Resolves with {room, password, ws} once the room is open.
 */
export async function hostFiles(connect, picked, ui = {}, dirs = []) {
  const items = picked.map((f) => (f instanceof Blob ? { file: f, name: f.name } : f));
  const files = items.map((it) => it.file);
  const named = items.map((it) => ({ name: it.name, size: it.file.size }));
  const { total, chunkSize } = planSend(named, dirs);
  const entries = [];
  const worker = new Worker(new URL('./hashworker.js', import.meta.url), { type: 'module' });
  try {
    let before = 0;
    for (const [i, f] of files.entries()) {
      const r = await new Promise((resolve) => {
        worker.onmessage = (ev) => {
          if (ev.data.progress !== undefined) ui.hashing?.(before + ev.data.progress, total);
          else resolve(ev.data);
        };
        worker.onerror = (ev) => resolve({ error: ev.message || 'the hashing worker failed' });
        worker.postMessage({ id: 0, file: f, chunkSize });
      });
      if (r.error) throw new SendError(`Could not read ${items[i].name}: ${r.error}`);
      before += f.size;
      entries.push(r);
    }
  } finally {
    worker.terminate();
  }
  const m = buildManifest(chunkSize, named, entries, dirs);
  const ws = await connect();
  const key = newManifestKey();
  let created;
  try {
    created = await openRoom(ws, key.publicKey);
  } catch (e) {
    ws.close();
    throw e;
  }
  const signed = signManifest(key.secretKey, created.room, m.encoded);
  key.secretKey.fill(0);
  const password = sg.newPassword();
  const host = {
    ws,
    room: created.room,
    self: created.peer,
    password,
    iceServers: (created.ice ?? []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
    m,
    signed,
  };
  const store = { file: async (i) => files[i] };
  new Seeder(host, store, { served: ui.served, failed: ui.failed, closed: ui.closed }, { host: true, info: key.publicKey }).start();
  const out = { room: created.room, password };
  ui.ready?.(out);
  return { ...out, ws };
}

/**
 * The manifest of files ({name, size}: name a path in a folder or not)
 * and empty folders dirs at chunkSize from the files' hashes
 * (hashworker.js's {sha256, chunks} for each, in order), checked as a
 * receiver will check it; a SendError in words for people otherwise.
 * @returns {Manifest}
 */
export function buildManifest(chunkSize, files, hashed, dirs = []) {
  try {
    return newManifest(chunkSize, files.map((f, i) => ({ name: f.name, size: f.size, sha256: hashed[i].sha256, chunks: hashed[i].chunks })), dirs);
  } catch (e) {
    throw new SendError(`These files cannot be sent: ${e.message}`);
  }
}

/** How long the server may take to open the room. */
export const CREATE_TIMEOUT_MS = 15000;

/**
 * Opens a room on the server at ws (an open WebSocket) with key as its
 * manifest key, as send does: HOST_SLOTS upload slots, and MAX_FAILURES,
 * so the server closes the room once seeds report that many failed
 * handshakes (without it the server sets no limit). Resolves with the
 * created message; rejects with a SendError on a refusal, a closed
 * socket or no answer in time.
 */
export function openRoom(ws, key, timeout = CREATE_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    if (ws.readyState !== WebSocket.OPEN) {
      reject(new SendError('The connection to the signalling server closed before it opened a room. Reload the page to try again.'));
      return;
    }
    const done = () => {
      clearTimeout(timer);
      ws.removeEventListener('message', onMessage);
      ws.removeEventListener('close', onClose);
    };
    const timer = setTimeout(() => {
      done();
      reject(new SendError('The signalling server did not open a room in time. Reload the page to try again.'));
    }, timeout);
    const onClose = () => {
      done();
      reject(new SendError('The connection to the signalling server closed before it opened a room. Reload the page to try again.'));
    };
    const onMessage = (ev) => {
      let msg;
      try {
        msg = sg.decodeMessage(ev.data);
      } catch {
        return;
      }
      if (msg.type === 'created') {
        done();
        resolve(msg);
      } else if (msg.type === 'error') {
        done();
        reject(new SendError(`The signalling server refused to open a room: ${sg.CODES[msg.code] ?? msg.code}.`));
      }
    };
    ws.addEventListener('message', onMessage);
    ws.addEventListener('close', onClose);
    ws.send(sg.encodeMessage({ type: 'create', v: sg.PROTOCOL_VERSION, key, slots: HOST_SLOTS, max_failures: MAX_FAILURES }));
  });
}
