// One end of a live handshake for jscrypto_test.go's TestJSLive: the page's
// modules over a real WebSocket to a real signalling server, against a Go
// peer using pake and signalclient. Not a test file itself (node --test
// does not pick it up); the Go test runs it and reads its last stdout line.
//
//	node live.mjs join WSURL ROOM PASSWORD KEYHEX   (the page receives: initiator)
//	node live.mjs host WSURL PASSWORD KEYHEX        (the page sends: responder)
//	node live.mjs serve WSURL PASSWORD              (send.js's openRoom and
//	                                                 seed.js's Seeder as the host,
//	                                                 until it closes the room)
//	node live.mjs seed WSURL ROOM PASSWORD          (seed.js's Seeder as a seed
//	                                                 in ROOM, until it stops)
import { webcrypto } from 'node:crypto';
import * as c from '../web/js/cpace.js';
import * as sg from '../web/js/signal.js';
import { fromHex, toHex } from '../web/js/bytes.js';
import { FileHasher } from '../web/js/chain.js';
import { newManifest, newManifestKey, signManifest } from '../web/js/manifest.js';
import { openRoom } from '../web/js/send.js';
import { Seeder } from '../web/js/seed.js';

globalThis.crypto ??= webcrypto;

const [mode, url, ...rest] = process.argv.slice(2);

function connect(u) {
  const ws = new WebSocket(u);
  const queue = [];
  const waiters = [];
  ws.onmessage = (ev) => {
    const m = sg.decodeMessage(ev.data);
    if (waiters.length) waiters.shift()(m);
    else queue.push(m);
  };
  const opened = new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('websocket error'));
  });
  return {
    opened,
    send: (m) => ws.send(sg.encodeMessage(m)),
    next: () => new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      const t = setTimeout(() => reject(new Error('no message from the server in 10 s')), 10000);
      waiters.push((m) => {
        clearTimeout(t);
        resolve(m);
      });
      return undefined;
    }),
    close: () => ws.close(),
  };
}

async function nextRelay(conn) {
  for (;;) {
    const m = await conn.next();
    if (m.type === 'relay') return m;
    if (m.type === 'error') throw new Error(`server error ${m.code}: ${m.text ?? ''}`);
  }
}

async function join(conn, roomID, password, keyHex) {
  conn.send({ type: 'join', v: sg.PROTOCOL_VERSION, room: roomID });
  const joined = await conn.next();
  if (joined.type !== 'joined') throw new Error(`expected joined, got ${joined.type}`);
  if (toHex(joined.key) !== keyHex) throw new Error('joined carries another manifest key');
  const params = { room: roomID, initiator: joined.peer, responder: joined.host };
  const { initiator, hello } = c.startInitiator(password, params);
  conn.send({ type: 'relay', peer: joined.host, data: hello });
  const reply = (await nextRelay(conn)).data;
  let session;
  try {
    let confirm;
    ({ session, confirm } = initiator.finish(reply));
    conn.send({ type: 'relay', peer: joined.host, data: confirm });
  } catch (e) {
    conn.send({ type: 'relay', peer: joined.host, data: c.abortFrame(c.abortReason(e)) });
    return { error: e.code };
  }
  conn.send({ type: 'relay', peer: joined.host, data: session.seal(sg.encodeSignal({ t: 'offer', sdp: 'v=0 from the page', lanes: 1 })) });
  const answer = sg.decodeSignal(session.open((await nextRelay(conn)).data));
  return { t: answer.t, sdp: answer.sdp, info: toHex(answer.info ?? new Uint8Array(0)), lanes: answer.lanes };
}

async function host(conn, password, keyHex) {
  conn.send({ type: 'create', v: sg.PROTOCOL_VERSION, key: fromHex(keyHex) });
  const created = await conn.next();
  if (created.type !== 'created') throw new Error(`expected created, got ${created.type}`);
  // Tell the Go side where to join, then serve one handshake.
  console.log(JSON.stringify({ room: created.room }));
  const hello = await nextRelay(conn);
  const params = { room: created.room, initiator: hello.peer, responder: created.peer };
  let r;
  try {
    r = c.respond(password, params, hello.data);
  } catch (e) {
    conn.send({ type: 'relay', peer: hello.peer, data: c.abortFrame(c.abortReason(e)) });
    return { error: e.code };
  }
  conn.send({ type: 'relay', peer: hello.peer, data: r.reply });
  let session;
  try {
    session = r.responder.finish((await nextRelay(conn)).data);
  } catch (e) {
    conn.send({ type: 'fail' });
    return { error: e.code };
  }
  const offer = sg.decodeSignal(session.open((await nextRelay(conn)).data));
  conn.send({ type: 'relay', peer: hello.peer, data: session.seal(sg.encodeSignal({ t: 'answer', sdp: `answer to ${offer.sdp}`, info: fromHex(keyHex), lanes: 1 })) });
  return { t: offer.t, sdp: offer.sdp, lanes: offer.lanes };
}

// serve opens a room as the page that sends does and serves one small
// file with the page's Seeder until it closes the room (it says why) or
// the server closes the socket.
async function serve(password, roomID) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('websocket error'));
  });
  const data = new Uint8Array(100).fill(7);
  const { sha256, chunks } = new FileHasher(16 << 10).update(data).finish();
  const m = newManifest(16 << 10, [{ name: 'a', size: data.length, sha256, chunks }]);
  const key = newManifestKey();
  let self;
  const seed = !!roomID;
  if (seed) {
    // A seed: what it serves is not looked at here, only its handshakes.
    ws.send(sg.encodeMessage({ type: 'join', v: sg.PROTOCOL_VERSION, room: roomID }));
    const joined = await new Promise((resolve) => ws.addEventListener('message', (ev) => resolve(sg.decodeMessage(ev.data)), { once: true }));
    if (joined.type !== 'joined') throw new Error(`expected joined, got ${joined.type}`);
    self = joined.peer;
  } else {
    const created = await openRoom(ws, key.publicKey);
    [roomID, self] = [created.room, created.peer];
  }
  const signed = signManifest(key.secretKey, roomID, m.encoded);
  const why = new Promise((resolve) => {
    const dl = { ws, room: roomID, self, password, iceServers: [], m, signed };
    const store = { file: async () => new Blob([data]) };
    let failed = 0;
    const ui = { failed: (n) => { failed = n; }, closed: (w) => resolve({ closed: w, failed }) };
    new Seeder(dl, store, ui, seed ? {} : { host: true, info: key.publicKey }).start();
    ws.addEventListener('close', () => resolve({ socketClosed: true }));
  });
  // Once serving (a seed's offer sent before): the Go side may go on.
  console.log(JSON.stringify({ room: roomID, self }));
  return why;
}

const conn = mode === 'join' || mode === 'host' ? connect(url) : null;
try {
  await conn?.opened;
  let out;
  if (mode === 'join') out = await join(conn, ...rest);
  else if (mode === 'host') out = await host(conn, ...rest);
  else if (mode === 'serve') out = await serve(rest[0]);
  else out = await serve(rest[1], rest[0]);
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ fatal: String(e?.stack ?? e) }));
  process.exitCode = 1;
} finally {
  // Let the last frame leave before closing.
  setTimeout(() => conn?.close(), 200);
}
