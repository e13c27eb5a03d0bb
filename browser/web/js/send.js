// The page as a sender (at /send): the files dropped on it are hashed
// into a manifest (hashworker.js, on chain.js, as chunker does), signed with a key made for
// the room (manifest.js), and offered in a new room as `p2pxfer send`
// offers them: the page is the room's host, answers every receiver's
// CPace as the responder, puts its manifest key in each sealed answer, and
// serves pieces straight from the dropped files (seed.js's sessions).
//
//	page (host)                server                     receiver
//	  |-- create{v, key} -------->|                           |
//	  |<- created{room, peer} ----|                           |
//	  |   ... link /r/ROOM#PASSWORD, or p2pxfer recv ROOM ...  |
//	  |<- relay{Hello} -----------|<------- relay{Hello} -----|
//	  |   ... as seed.js from here on ...                      |

import * as sg from './signal.js';
import { newManifest, newManifestKey, signManifest } from './manifest.js';
import { Seeder } from './seed.js';

// As chunker.ChooseChunkSize: 64 KiB chunks, doubled while there would
// be more than 4096 of them (up to 1 MiB), then while more than 65536.
const SWARM_CHUNK = 64 << 10;
const DEFAULT_CHUNK = 1 << 20;
const MAX_CHUNK = 64 << 20;

export function chooseChunkSize(total) {
  let cs = SWARM_CHUNK;
  while (cs < DEFAULT_CHUNK && total / cs > 4096) cs *= 2;
  while (cs < MAX_CHUNK && total / cs > 65536) cs *= 2;
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
 * Hashes files (File objects, sent under their names, or {file, name}
 * with name a path in a folder: folders.js's Selection), builds and signs
 * their manifest, with dirs the empty folders, in a new room on the
 * server at ws (an open WebSocket), and serves them until the socket
 * closes. ui: hashing(done, total), ready({room, password}), served(n).
 * Resolves with {room, password} once the room is open.
 */
export async function hostFiles(ws, picked, ui = {}, dirs = []) {
  const items = picked.map((f) => (f instanceof Blob ? { file: f, name: f.name } : f));
  const files = items.map((it) => it.file);
  const names = new Set();
  for (const { name } of items) {
    if (names.has(name)) throw new SendError(`Two files are named ${name}: send them one at a time, or rename one.`);
    names.add(name);
  }
  const total = files.reduce((n, f) => n + f.size, 0);
  const chunkSize = chooseChunkSize(total);
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
      entries.push({ name: items[i].name, size: f.size, sha256: r.sha256, chunks: r.chunks });
    }
  } finally {
    worker.terminate();
  }
  let m;
  try {
    m = newManifest(chunkSize, entries, dirs);
  } catch (e) {
    throw new SendError(`These files cannot be sent: ${e.message}`);
  }
  const key = newManifestKey();
  const created = await create(ws, key.publicKey);
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
  new Seeder(host, store, { served: ui.served }, { host: true, info: key.publicKey }).start();
  const out = { room: created.room, password };
  ui.ready?.(out);
  return out;
}

// create opens a room with key as its manifest key; resolves with the
// created message.
function create(ws, key) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.removeEventListener('message', onMessage);
      reject(new SendError('The signalling server did not open a room in time. Reload the page to try again.'));
    }, 15000);
    const onMessage = (ev) => {
      let msg;
      try {
        msg = sg.decodeMessage(ev.data);
      } catch {
        return;
      }
      if (msg.type === 'created') {
        clearTimeout(timer);
        ws.removeEventListener('message', onMessage);
        resolve(msg);
      } else if (msg.type === 'error') {
        clearTimeout(timer);
        ws.removeEventListener('message', onMessage);
        reject(new SendError(`The signalling server refused to open a room: ${sg.CODES[msg.code] ?? msg.code}.`));
      }
    };
    ws.addEventListener('message', onMessage);
    ws.send(sg.encodeMessage({ type: 'create', v: sg.PROTOCOL_VERSION, key }));
  });
}
