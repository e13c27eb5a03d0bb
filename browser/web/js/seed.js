// The page as a seed: once every file is verified, and while the tab
// stays open, it serves its pieces to later receivers in the room (the
// CLI's or other pages), as peer/serve.go's servePool does for a seed:
//
//	page (seed)                server                     receiver
//	  |-- seed{slots,complete} -->|                           |
//	  |<- relay{Hello} -----------|<------- relay{Hello} -----|  (the server
//	  |-- relay{Reply} ---------->|-------------------------->|   assigned us)
//	  |<- relay{Confirm} ---------|<--------------------------|
//	  |<- sealed offer, cands ----|<--------------------------|
//	  |-- sealed answer (lanes:1), cands ---------------------->|
//	  |============ data channel DATA_CHANNEL_LABEL ============|
//	  |-- 'M' the signed manifest as the sender signed it ----->|
//	  |-- 'H' every chunk --------------------------------------->|
//	  |<- 'W' wants, 'X' cancels, 'A' haves ---------------------|
//	  |-- 'D' piece data (read from the stored files) --------->|
//	  |-- 'C' a file that can no longer be read ---------------->|
//	  |<- 'F' finished ------------------------------------------|
//
// A seed has no signing key: the answer carries no info, and receivers
// check the manifest against the room's key. A failed password handshake
// is reported to the server (fail), which closes the room after its limit;
// after MAX_FAILURES of them the page stops serving (a host closes its
// room), as peer/serve.go's pool does.

import * as c from './cpace.js';
import * as sg from './signal.js';
import * as fr from './frames.js';
import { Bitmap } from './bitmap.js';
import { Inbox } from './inbox.js';
import { HANDSHAKE_TIMEOUT_MS, CONNECT_TIMEOUT_MS } from './timeouts.js';

/** Upload slots a page that received offers the server (seed{slots}). */
export const SEED_SLOTS = 2;
/**
 * Upload slots a page that sends registers at create, as send's
 * --max-uploads default: more receivers wait in the server's FIFO queue.
 */
export const HOST_SLOTS = 4;
/**
 * Sessions one page runs at once (peer/serve.go's MaxConcurrent): the
 * server's slots bound it first; the margin covers a session that is
 * still ending when the server already hands its slot on. A Hello beyond
 * it is answered busy.
 */
export const MAX_SESSIONS = 16;
/**
 * Failed password handshakes after which a page stops serving (a host
 * closes its room), send's default; a host registers it at create, so
 * the server closes the room when its seeds report as many.
 */
export const MAX_FAILURES = 10;
/** Requests one receiver may queue (peer/serve.go's maxOutstanding). */
export const MAX_OUTSTANDING = 4096;
// Files a page keeps looked up for the pieces that follow.
const MAX_OPEN_FILES = 64;
// Candidates that may wait for the offer.
const MAX_PENDING_CANDIDATES = 64;
// The channel's send buffer is kept between these, so memory stays
// bounded whatever the receiver asks, and below the 16 MiB at which a
// browser's data channel refuses to queue more.
const HIGH_WATER = 4 << 20;
const LOW_WATER = 1 << 20;

/**
 * What a serving page does with a relay frame (data) from a peer:
 * 'deliver' it to that peer's session when one runs; 'start' a session
 * for a Hello (a Hello of another version too, which the session refuses
 * with ABORT_VERSION); 'busy' when active sessions reach limit (answer
 * ABORT_BUSY, so the receiver learns at once, as Go's pool does);
 * 'restart' for a Hello from a peer whose session runs: it started over,
 * having given up on that session (a connection that stayed silent, say),
 * so that session ends and a new one starts with the Hello;
 * 'ignore' anything else: a stray frame of a session that ended, which
 * must not hold a slot for a handshake timeout, or any frame once the
 * page stopped serving.
 */
export function relayAction(running, data, active, limit, stopped) {
  let kind;
  try {
    kind = c.frameKind(data);
  } catch {
    return running ? 'deliver' : 'ignore';
  }
  if (running) return kind === c.KIND_HELLO && !stopped ? 'restart' : 'deliver';
  if (stopped || kind !== c.KIND_HELLO) return 'ignore';
  return active >= limit ? 'busy' : 'start';
}

/**
 * The piece requests of one receiver, as peer/serve.go's reqQueue: what
 * it wants, in order, with its cancels. Every index is checked against
 * the manifest's piece count and what we offer; at most max requests
 * wait, and a cancel counts only against a request that waits, so
 * nothing here grows with what the receiver sends.
 */
export class RequestQueue {
  #n;
  #offered;
  #max;
  #q = [];
  #head = 0;
  #queued = new Map(); // piece -> requests waiting
  #cancelled = new Map(); // piece -> cancels of those, at most queued

  /**
   * @param {number} numPieces the manifest's piece count
   * @param {(p: number) => boolean} offered whether we offer piece p
   */
  constructor(numPieces, offered, max = MAX_OUTSTANDING) {
    this.#n = numPieces;
    this.#offered = offered;
    this.#max = max;
  }

  /** Requests waiting, cancelled ones included until taken. */
  get length() {
    return this.#q.length - this.#head;
  }

  #check(p) {
    if (!Number.isInteger(p) || p < 0 || p >= this.#n) throw new fr.ProtocolError(`piece ${p} of ${this.#n}`);
  }

  /** Queues a 'W' frame's list; throws ProtocolError for a bad index, a piece we do not offer, or too many. */
  want(list) {
    for (const p of list) {
      this.#check(p);
      if (!this.#offered(p)) throw new fr.ProtocolError(`request for piece ${p}, which we do not offer`);
      if (this.length >= this.#max) throw new fr.ProtocolError(`more than ${this.#max} outstanding requests`);
      this.#q.push(p);
      this.#queued.set(p, (this.#queued.get(p) ?? 0) + 1);
    }
  }

  /** Takes an 'X' frame's list; throws ProtocolError for a bad index. */
  cancel(list) {
    for (const p of list) {
      this.#check(p);
      const n = this.#cancelled.get(p) ?? 0;
      if (n < (this.#queued.get(p) ?? 0)) this.#cancelled.set(p, n + 1);
    }
  }

  /** The next request that still stands, or -1 when none waits. */
  take() {
    while (this.length > 0) {
      const p = this.#q[this.#head++];
      if (this.#head >= 1024 && 2 * this.#head >= this.#q.length) {
        this.#q = this.#q.slice(this.#head);
        this.#head = 0;
      }
      const q = this.#queued.get(p) - 1;
      if (q === 0) this.#queued.delete(p);
      else this.#queued.set(p, q);
      const n = this.#cancelled.get(p) ?? 0;
      if (n > 0) {
        if (n === 1) this.#cancelled.delete(p);
        else this.#cancelled.set(p, n - 1);
        continue;
      }
      return p;
    }
    return -1;
  }
}

/**
 * Serves the finished download dl (receive.js's Download, with its
 * signalling socket still open) until the socket closes. ui.served(n) is
 * told how many receivers finished from us; ui.failed(n) how many
 * password handshakes failed so far (as send prints each); ui.closed(why)
 * that serving ended for the page's own reason (too many wrong
 * passwords).
 */
export class Seeder {
  /**
   * opts.host: the page is the room's host (send.js), which the server
   * assigns as it created the room, with opts.info (its manifest key) in
   * every sealed answer.
   */
  constructor(dl, store, ui = {}, opts = {}) {
    this.dl = dl;
    this.store = store;
    this.ui = ui;
    this.host = !!opts.host;
    this.info = opts.info ?? null;
    this.sessions = new Map();
    this.finished = 0;
    this.failures = 0;
    this.stopped = false;
    // Files that could not be read since they were hashed (a picked file
    // changed on disk): offered no more, and said so with 'C'.
    this.withdrawn = new Set();
    this.files = new Map();
    const m = dl.m;
    this.bitmap = new Bitmap(m.numPieces);
    for (let i = 0; i < m.numChunks; i++) this.bitmap.set(i);
  }

  // file is file i of the store, kept for the next piece of it: the
  // last MAX_OPEN_FILES looked up, so what is kept does not grow with
  // the file count.
  async file(i) {
    let f = this.files.get(i);
    if (f) {
      this.files.delete(i); // most recent last
    } else {
      f = await this.store.file(i);
      if (this.files.size >= MAX_OPEN_FILES) this.files.delete(this.files.keys().next().value);
    }
    this.files.set(i, f);
    return f;
  }

  /**
   * Whether a receiver may ask for piece p: a chunk (a page holds no
   * parity). A piece of a file withdrawn since may still be asked for by
   * a receiver that has not heard yet; the pump answers it with 'C'.
   */
  offers(p) {
    return p < this.dl.m.numChunks;
  }

  /** The have-bitmap a new receiver gets: every chunk of the files still offered. */
  haves() {
    if (this.withdrawn.size === 0) return this.bitmap.bytes();
    const m = this.dl.m;
    const b = new Bitmap(m.numPieces);
    for (let f = 0; f < m.files.length; f++) {
      if (this.withdrawn.has(f)) continue;
      const { first, count } = m.fileChunks(f);
      for (let i = first; i < first + count; i++) b.set(i);
    }
    return b.bytes();
  }

  start() {
    const ws = this.dl.ws;
    this.onMessage = (ev) => this.#onSignal(ev.data);
    this.onClose = () => this.#lost();
    ws.addEventListener('message', this.onMessage);
    ws.addEventListener('close', this.onClose);
    if (!this.host) this.#send({ type: 'seed', slots: SEED_SLOTS, complete: true });
    return this;
  }

  /** Ends every session and leaves the room. */
  stop() {
    this.#shutdown();
    try {
      this.dl.ws.close();
    } catch {
      // closed already
    }
  }

  // shutdown ends every session; none of their ends counts as a failure,
  // since it is ours.
  #shutdown() {
    this.#unlisten();
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
  }

  #unlisten() {
    this.stopped = true;
    this.dl.ws.removeEventListener('message', this.onMessage);
    this.dl.ws.removeEventListener('close', this.onClose);
  }

  // lost: the signalling socket closed. Nobody new can reach us, and a
  // handshake cannot finish; receivers already past it are served to the
  // end, over their own connections (peer/serve.go's signallingLost).
  #lost() {
    if (this.stopped) return;
    this.#unlisten();
    for (const s of [...this.sessions.values()]) if (s.session === null) s.end(false);
  }

  #send(m) {
    if (this.dl.ws.readyState === WebSocket.OPEN) this.dl.ws.send(sg.encodeMessage(m));
  }

  #onSignal(text) {
    let m;
    try {
      m = sg.decodeMessage(text);
    } catch {
      return; // receive.js reports a malformed server
    }
    if (m.type === 'relay') {
      const s = this.sessions.get(m.peer);
      switch (relayAction(!!s, m.data, this.sessions.size, MAX_SESSIONS, this.stopped)) {
        case 'deliver':
          s.deliver(m.data);
          break;
        case 'restart':
          s.end(false);
          if (this.stopped) break;
        // falls through: a new session for the Hello
        case 'start': {
          const n = new Session(this, m.peer);
          this.sessions.set(m.peer, n);
          n.run(m.data);
          break;
        }
        case 'busy':
          this.relay(m.peer, c.abortFrame(c.ABORT_BUSY));
          break;
      }
    } else if (m.type === 'left' || (m.type === 'error' && m.peer)) {
      // Counted as it ends: a receiver that leaves after our Reply had
      // its password guess all the same. One whose channel is open is
      // served on over it: only the channel says when it is gone.
      const s = this.sessions.get(m.peer);
      if (s && !s.connected) s.end(false);
    }
  }

  /** A session's end: ok when the receiver finished; authFail when it had our Reply and never confirmed. */
  ended(s, ok, authFail) {
    if (this.sessions.get(s.id) !== s) return;
    this.sessions.delete(s.id);
    if (ok) {
      this.finished++;
      this.ui.served?.(this.finished);
    }
    if (!authFail || this.stopped) return;
    this.failures++;
    if (!this.host) this.#send({ type: 'fail' }); // a host counts its own (the room closes with it)
    this.ui.failed?.(this.failures);
    if (this.failures < MAX_FAILURES) return;
    // Each failure was an online password guess: stop answering them.
    if (this.host) {
      this.#send({ type: 'close', code: 'too_many_failures' });
      this.ui.closed?.(`The room was closed after ${this.failures} wrong passwords: start again to send.`);
    } else {
      this.ui.closed?.(`Stopped sharing the files with other receivers after ${this.failures} wrong passwords.`);
    }
    this.stop();
  }

  relay(peer, data) {
    this.#send({ type: 'relay', peer, data });
  }
}

// dataFrames yields piece p's 'D' frames one at a time, so a large piece
// is not copied whole into frames at once.
function* dataFrames(p, data) {
  for (let off = 0; off < data.length; off += fr.MAX_DATA_PAYLOAD) {
    yield fr.dataFrame(p, off, data.subarray(off, Math.min(off + fr.MAX_DATA_PAYLOAD, data.length)));
  }
}

/** One receiver we serve. */
class Session {
  constructor(seeder, id) {
    this.seeder = seeder;
    this.id = id;
    this.inbox = new Inbox();
    this.closed = false;
    this.replied = false; // our Reply went out: the receiver could test a password
    this.responder = null; // between our Reply and the Confirm
    this.session = null; // the password confirmed
    this.dc = null;
    this.pc = null;
    this.connected = false; // the data channel opened
    this.queue = null;
    this.told = new Set(); // withdrawn files this receiver heard of
    this.sending = false;
    this.ready = false; // manifest and bitmap sent: pieces may follow
    this.wakers = [];
    this.ending = null; // wakes the wait for the data channel
  }

  deliver(b) {
    if (!this.inbox.put(b)) this.end(false); // flooding
  }

  #next(timeout) {
    return this.inbox.next(timeout);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    // Keys are zeroed once nothing needs them, as cpace.js does its own.
    this.responder?.wipe();
    this.session?.wipe();
    this.inbox.close();
    this.ending?.();
    this.#wake();
    try {
      this.dc?.close();
      this.pc?.close();
    } catch {
      // closed already
    }
  }

  /**
   * end closes the session and reports it, once: ok when the receiver
   * finished; a failed password guess when it had our Reply and never
   * confirmed, however it ended.
   */
  end(ok) {
    this.close();
    this.seeder.ended(this, ok, this.replied && this.session === null);
  }

  async run(hello) {
    const dl = this.seeder.dl;
    let r;
    try {
      r = c.respond(dl.password, { room: dl.room, initiator: this.id, responder: dl.self }, hello);
    } catch (e) {
      if (e.code === 'version') this.seeder.relay(this.id, c.abortFrame(c.ABORT_VERSION));
      return this.end(false);
    }
    this.responder = r.responder;
    this.seeder.relay(this.id, r.reply);
    this.replied = true;
    // Sealed frames of an earlier session with this peer are passed over,
    // as Go's link.recvHandshake does.
    const deadline = Date.now() + HANDSHAKE_TIMEOUT_MS;
    let confirm;
    for (;;) {
      confirm = await this.#next(Math.max(1, deadline - Date.now()));
      if (!confirm || confirm[0] !== c.KIND_SEALED) break;
    }
    try {
      if (!confirm) throw new Error('no confirm');
      this.session = r.responder.finish(confirm);
      this.responder = null;
    } catch (e) {
      if (e.code === 'wrong_password' && !e.peerAborted) this.seeder.relay(this.id, c.abortFrame(c.ABORT_WRONG_PASSWORD));
      return this.end(false);
    }
    try {
      await this.#accept();
    } catch {
      this.end(false);
    }
    return undefined;
  }

  #sealed(m) {
    this.seeder.relay(this.id, this.session.seal(sg.encodeSignal(m)));
  }

  async #accept() {
    const dl = this.seeder.dl;
    if (this.closed) return;
    const pc = new RTCPeerConnection({ iceServers: dl.iceServers });
    this.pc = pc;
    pc.onicecandidate = (ev) => {
      const ci = ev.candidate;
      if (!ci || !ci.candidate || this.closed) return;
      this.#sealed({ t: 'cand', cand: { candidate: ci.candidate, sdpMid: ci.sdpMid ?? undefined, sdpMLineIndex: ci.sdpMLineIndex ?? undefined } });
    };
    let timer;
    const opened = new Promise((resolve, reject) => {
      pc.ondatachannel = (ev) => {
        const ch = ev.channel;
        if (this.dc !== null || ch.label !== fr.DATA_CHANNEL_LABEL) {
          ch.close(); // a browser has one channel; anything else is refused
          return;
        }
        ch.binaryType = 'arraybuffer';
        this.dc = ch;
        if (ch.readyState === 'open') resolve();
        else ch.onopen = resolve;
      };
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === 'failed') reject(new Error('no path'));
      };
      this.ending = () => reject(new Error('closed'));
      timer = setTimeout(() => reject(new Error('no connection in time')), CONNECT_TIMEOUT_MS);
    });
    opened.catch(() => {});
    this.#signalling(pc);
    try {
      await opened;
    } finally {
      clearTimeout(timer);
      this.ending = null;
    }
    if (this.closed) return;
    this.connected = true;
    // A path that dies (the receiver gone without a word) ends the session
    // when the browser gives up on it, not only when the channel closes.
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') this.end(false);
    };
    await this.#serve();
  }

  // signalling reads the receiver's sealed offer and candidates, before
  // the channel opens and after (late candidates), until the session ends.
  async #signalling(pc) {
    let haveRemote = false;
    const pending = [];
    while (!this.closed) {
      const b = await this.#next(0);
      if (!b || this.closed) return;
      let m;
      try {
        m = sg.decodeSignal(this.session.open(b));
      } catch {
        this.end(false);
        return;
      }
      try {
        if (m.t === 'offer' && !haveRemote) {
          await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
          haveRemote = true;
          const ans = await pc.createAnswer();
          await pc.setLocalDescription(ans);
          if (this.closed) return;
          this.#sealed({ t: 'answer', sdp: ans.sdp, lanes: 1, info: this.seeder.info ?? undefined });
          for (const ci of pending) await pc.addIceCandidate(ci);
          pending.length = 0;
        } else if (m.t === 'cand') {
          if (haveRemote) await pc.addIceCandidate(m.cand);
          else if (pending.length < MAX_PENDING_CANDIDATES) pending.push(m.cand);
        } else if (m.t === 'bye') {
          this.end(false);
          return;
        }
      } catch {
        this.end(false);
        return;
      }
    }
  }

  // drained resolves once the channel's buffer is below HIGH_WATER (or
  // the session ended), so neither a large manifest nor a large piece
  // overfills it.
  #drained() {
    if (this.closed || this.dc.bufferedAmount < HIGH_WATER) return Promise.resolve();
    return new Promise((resolve) => this.wakers.push(resolve));
  }

  #wake() {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  // write sends frames (any iterable, read as it goes) as the buffer
  // drains.
  async #write(frames) {
    for (const f of frames) {
      await this.#drained();
      if (this.closed) return;
      this.dc.send(f);
    }
  }

  async #serve() {
    const dc = this.dc;
    const seeder = this.seeder;
    const m = seeder.dl.m;
    this.queue = new RequestQueue(m.numPieces, (p) => seeder.offers(p));
    dc.bufferedAmountLowThreshold = LOW_WATER;
    dc.onbufferedamountlow = () => {
      this.#wake();
      this.#pump();
    };
    dc.onclose = () => this.end(false);
    // The receiver's bitmap must be as long as the manifest says, which
    // is checked on its first part, before anything is kept of it.
    const bitmapBytes = Math.ceil(m.numPieces / 8);
    const bm = new fr.Assembler();
    dc.onmessage = (ev) => {
      if (this.closed) return;
      try {
        const f = fr.parseFrame(new Uint8Array(ev.data));
        switch (f.type) {
          case fr.T_WANT:
            this.queue.want(f.list);
            this.#pump();
            break;
          case fr.T_CANCEL:
            this.queue.cancel(f.list);
            break;
          case fr.T_HAVE:
            for (const p of f.list) if (p >= m.numPieces) throw new fr.ProtocolError(`have for piece ${p} of ${m.numPieces}`);
            break;
          case fr.T_BITMAP: {
            if (f.total !== bitmapBytes) throw new fr.ProtocolError(`have-bitmap of ${f.total} bytes for ${m.numPieces} pieces`);
            const whole = bm.add(f);
            if (whole) Bitmap.fromBytes(m.numPieces, whole);
            break;
          }
          case fr.T_SERVES:
            break;
          case fr.T_FINISHED:
            this.end(true);
            break;
          case fr.T_ERROR:
            this.end(false);
            break;
          default:
            throw new fr.ProtocolError(`unexpected frame ${f.type}`);
        }
      } catch {
        try {
          dc.send(fr.errorFrame('protocol error'));
        } catch {
          // closing anyway
        }
        this.end(false);
      }
    };
    await this.#write(fr.partFrames(fr.T_MANIFEST, seeder.dl.signed));
    await this.#write(fr.partFrames(fr.T_BITMAP, seeder.haves()));
    await this.#write([...seeder.withdrawn].map((f) => this.#changed(f)).filter((x) => x));
    this.ready = true;
    this.#pump();
  }

  // changed is the 'C' frame for file f, the first time this receiver
  // hears of it; null after.
  #changed(f) {
    if (this.told.has(f)) return null;
    this.told.add(f);
    return fr.changedFrame(f);
  }

  // pump sends requested pieces while the channel's buffer has room; one
  // piece is read from storage at a time.
  async #pump() {
    if (this.sending || this.closed || !this.ready) return;
    this.sending = true;
    const seeder = this.seeder;
    const m = seeder.dl.m;
    try {
      while (!this.closed && this.dc.bufferedAmount < HIGH_WATER) {
        const p = this.queue.take();
        if (p < 0) break;
        const ch = m.chunk(p);
        if (seeder.withdrawn.has(ch.file)) {
          await this.#write([this.#changed(ch.file)].filter((x) => x));
          continue;
        }
        let data;
        try {
          const file = await seeder.file(ch.file);
          data = new Uint8Array(await file.slice(ch.offset, ch.offset + ch.size).arrayBuffer());
          if (data.length !== ch.size) throw new DOMException('short read', 'NotReadableError');
        } catch (e) {
          if (e?.name !== 'NotReadableError' && e?.name !== 'NotFoundError') throw e;
          // The file changed or went since it was hashed (a browser
          // refuses to read a picked file modified since): the others are
          // still served, as peer/serve.go's withdraw.
          seeder.withdrawn.add(ch.file);
          await this.#write([this.#changed(ch.file)].filter((x) => x));
          continue;
        }
        if (this.closed) return;
        await this.#write(dataFrames(p, data));
      }
    } catch {
      try {
        this.dc.send(fr.errorFrame('source cannot read its files'));
      } catch {
        // closing anyway
      }
      this.end(false);
    } finally {
      this.sending = false;
    }
  }
}
