// The page as a receiver: what peer/receive.go does for `p2pxfer recv`,
// over one signalling WebSocket and one RTCPeerConnection per source.
//
//	page                       server                      source (sender or seed)
//	  |-- want{count} ------------>|                              |
//	  |<------------ peers{[id]} --|  (or queued{position,sources})
//	  |-- relay{Hello} ----------->|-- relay ------------------->|  CPace (cpace.js)
//	  |<------------ relay{Reply} -|<-----------------------------|
//	  |-- relay{Confirm} --------->|----------------------------->|
//	  |-- relay{sealed offer, lanes:1} / {cand} ...  ---------->|  sealed signalling v6
//	  |<------- relay{sealed answer (info: key)} / {cand} ... ---|  (signal.js)
//	  |========== data channel DATA_CHANNEL_LABEL (frames.js) =====|
//	  |<-- 'M' signed manifest, 'H' its have-bitmap --------------|
//	  |-- 'H' ours (what survived a reload) ---------------------->|
//	  |-- 'W' wants (a bounded window) ------------------------->|
//	  |<-- 'D' piece data, 'A' its new haves ---------------------|
//	  |-- 'A' our haves (a sender offers more as we report) ---->|
//	  |-- 'F' finished ------------------------------------------>|
//	  |-- release{id} ------------>|                              |
//
// A browser has one peer connection per source and no direct lanes: it
// offers lanes:1, which ends the lane negotiation at once. Every piece is
// verified (storeworker.js) before it is kept; a source that sends a bad
// one is dropped for the transfer and its pieces go to the others, as the
// CLI does. The same password opens every source, so a wrong one ends the
// download; so does tampered signalling.

import * as c from './cpace.js';
import * as sg from './signal.js';
import * as fr from './frames.js';
import { openManifest, ManifestError } from './manifest.js';
import { Bitmap } from './bitmap.js';
import { equal } from './bytes.js';
import { Store, opfsAvailable } from './store.js';
import { IdbStore } from './idbstore.js';
import { Inbox } from './inbox.js';
import { Backlog } from './backlog.js';
import { HANDSHAKE_TIMEOUT_MS, CONNECT_TIMEOUT_MS } from './timeouts.js';

// As the CLI's: sources at once, tries for one never reached, and how
// long a source may owe pieces and send nothing.
const MAX_SOURCES = 4;
const MAX_CONNECT_TRIES = 2;
const SOURCE_STALL_MS = 30000;
// The same for a source the server says has left: one whose data still
// flows goes on, one gone quiet is given up sooner.
const LEFT_STALL_MS = 5000;
// How often the page asks for more sources while it has fewer than it may use.
const WANT_EVERY_MS = 3000;
// With nobody in the room holding what is missing: how long to wait for
// someone to come before giving up.
const NO_SOURCE_WAIT_MS = 30000;
// Haves go out batched, as receive.go's haveEvery.
const HAVE_EVERY_MS = 20;
// Finished frames get this long to reach the sources before the
// connections close.
const FINISH_GRACE_MS = 2000;
// Pieces asked of one source, in bytes: about a second of what it
// delivers, between these bounds; the pieces in flight and waiting to be
// verified are what the page holds in memory.
const MIN_WINDOW = 512 << 10;
const MAX_WINDOW = 16 << 20;
// And in count, whatever their size (a source queues at most 4096).
const MAX_ASKED = 1024;

/**
 * Why a download failed. code: 'wrong_password', 'no_path', 'room'
 * (closed or unknown: text says which), 'corrupt' (every source sent bad
 * data), 'changed' (a file changed on the sender's disk and nobody has it
 * as offered), 'forged', 'tampered', 'no_source', 'signalling', 'storage',
 * 'protocol'. The message is for people.
 */
export class ReceiveError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ReceiveError';
    this.code = code;
  }
}

// The words the page shows for the server's fatal error codes.
const ROOM_WORDS = {
  room_not_found: 'There is no such room on this server. Check the link, or ask the sender whether p2pxfer send is still running.',
  room_closed: 'The sender closed this room.',
  too_many_failures: 'This room was closed after too many wrong passwords.',
  rate_limited: 'Too many attempts from your address. Wait a minute, then reload the page.',
  server_full: 'The signalling server is full. Try again in a few minutes.',
  version: 'This page and the server speak different versions. Reload the page.',
};

/** The words for a server's error code. */
export function roomWords(code, text) {
  return ROOM_WORDS[code] || `The signalling server refused: ${text || sg.CODES[code] || code}.`;
}

const WRONG_PASSWORD = 'Wrong password. Check it with the sender (it is case-sensitive) and try again.';

/**
 * One download. Give it the open signalling socket and the joined
 * message; run() resolves once every file is verified and stored, or
 * rejects with a ReceiveError; with keepSignal the signalling socket
 * stays open afterwards, for seed.js. ui holds callbacks, all optional:
 * manifest(m, resumedBytes), progress(done, total), source(event),
 * status(text).
 */
export class Download {
  constructor({ ws, joined, password, ui = {}, keepSignal = false }) {
    this.ws = ws;
    this.keepSignal = keepSignal;
    this.room = joined.room;
    this.self = joined.peer;
    this.host = joined.host;
    this.key = joined.key;
    this.iceServers = (joined.ice ?? []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
    this.password = password;
    this.ui = ui;
    this.srcs = new Map();
    this.banned = new Set();
    this.unreachable = new Map();
    this.banErr = null;
    this.m = null;
    this.signed = null;
    this.store = null;
    this.have = null; // Bitmap of verified chunks
    // Chunks asked of a source and not yet verified, with the source they
    // were asked of: a verdict that comes after the piece was asked again
    // elsewhere must not free the newer request.
    this.inflight = new Map();
    this.cursor = 0; // every chunk below is verified or in flight
    this.verified = 0;
    this.resumed = 0;
    this.news = [];
    this.haveTimer = null;
    this.lastWant = 0;
    this.noneLeftSince = 0;
    this.lost = null;
    this.complete = false;
    this.opening = null;
    // A file withdrawn by a source ('C'): the download's error should
    // nobody else have it; and whether the server said nobody else offers.
    this.changed = null;
    this.noneLeft = false;
    this.stuckSince = 0;
  }

  run() {
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.ws.addEventListener('message', (ev) => this.#onSignal(ev.data));
      this.ws.addEventListener('close', () => this.#onSignalClosed());
      this.timer = setInterval(() => this.#tick(), 1000);
      this.#want();
    });
  }

  // --- the end ---------------------------------------------------------

  fail(err) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    for (const s of this.srcs.values()) s.close();
    this.srcs.clear();
    this.store?.close();
    try {
      this.ws.close();
    } catch {
      // already closed
    }
    this.reject(err instanceof ReceiveError ? err : new ReceiveError('protocol', `The download failed: ${err?.message ?? err}`));
  }

  async #finish() {
    if (this.complete) return; // a late verdict on a piece asked twice
    this.complete = true;
    this.#tellHaves();
    clearInterval(this.timer);
    for (const s of this.srcs.values()) {
      s.finishedSent = true;
      s.send(fr.flagFrame(fr.T_FINISHED, this.keepSignal));
    }
    try {
      await this.store.finish();
    } catch (e) {
      this.fail(new ReceiveError('storage', e.message));
      return;
    }
    this.ended = true;
    setTimeout(() => {
      for (const s of this.srcs.values()) {
        s.close();
        this.#sendSignal({ type: 'release', peer: s.id });
      }
      this.srcs.clear();
      if (this.keepSignal) return; // the page stays as a seed (seed.js)
      try {
        this.ws.close();
      } catch {
        // already closed
      }
    }, FINISH_GRACE_MS);
    this.resolve(this.store);
  }

  // --- signalling ------------------------------------------------------

  #sendSignal(m) {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(sg.encodeMessage(m));
  }

  relay(peer, data) {
    this.#sendSignal({ type: 'relay', peer, data });
  }

  #onSignal(text) {
    if (this.ended) return;
    let m;
    try {
      m = sg.decodeMessage(text);
    } catch (e) {
      this.fail(new ReceiveError('signalling', `The signalling server sent something malformed (${e.message}). Reload the page.`));
      return;
    }
    switch (m.type) {
      case 'peers':
        this.#peers(m.peers);
        break;
      case 'queued':
        // sources is left out when 0 (omitempty on the wire).
        this.noneLeft = (m.sources ?? 0) === 0;
        if (this.noneLeft && this.srcs.size === 0) {
          if (this.banErr) {
            this.fail(this.banErr);
            return;
          }
          if (!this.noneLeftSince) this.noneLeftSince = Date.now();
          this.ui.status?.('Nobody in the room has the files right now. Waiting for the sender…');
        } else if (this.srcs.size === 0) {
          this.noneLeftSince = 0;
          this.ui.status?.(`Every source is busy; you are number ${m.position} in the queue.`);
        }
        break;
      case 'relay':
        this.srcs.get(m.peer)?.deliver(m.data);
        break;
      case 'left':
        this.srcs.get(m.peer)?.peerLeft();
        break;
      case 'error':
        if (m.peer) {
          this.srcs.get(m.peer)?.peerLeft();
        } else if (sg.codeFatal(m.code)) {
          this.fail(new ReceiveError('room', roomWords(m.code, m.text)));
        }
        break;
    }
  }

  #onSignalClosed() {
    if (this.ended) return;
    this.lost = new ReceiveError('signalling', 'The connection to the signalling server closed. Check that the sender is still running, and reload the page to resume.');
    for (const s of this.srcs.values()) if (!s.connected) s.end(this.lost);
    if (this.srcs.size === 0) this.fail(this.lost);
  }

  #want() {
    const n = Math.min(MAX_SOURCES - this.srcs.size, sg.MAX_WANT);
    if (this.complete || this.lost || n <= 0) return;
    this.lastWant = Date.now();
    this.#sendSignal({ type: 'want', count: n });
  }

  #peers(ids) {
    this.noneLeft = false;
    let fresh = false;
    for (const id of ids) {
      if (!this.banned.has(id)) fresh = true;
      if (this.banned.has(id) || this.complete || this.srcs.has(id) || id === this.self) {
        this.#sendSignal({ type: 'release', peer: id });
        continue;
      }
      const s = new Source(this, id);
      this.srcs.set(id, s);
      s.run();
    }
    this.noneLeftSince = 0;
    if (!fresh && this.srcs.size === 0 && this.banErr) this.fail(this.banErr);
  }

  #tick() {
    if (this.ended) return;
    const now = Date.now();
    for (const s of this.srcs.values()) {
      s.rate = s.rate === 0 ? s.got : 0.5 * s.rate + 0.5 * s.got;
      s.got = 0;
      if (s.connected && s.asked.size > 0 && s.gone && now - s.lastData > LEFT_STALL_MS) {
        this.drop(s, 'left', new ReceiveError('no_source', 'A source left the room and sent nothing more.'));
      } else if (s.connected && s.asked.size > 0 && now - s.lastData > SOURCE_STALL_MS) {
        this.drop(s, 'left', new ReceiveError('no_source', `A source sent nothing for ${SOURCE_STALL_MS / 1000} s.`));
      }
    }
    if (this.srcs.size < MAX_SOURCES && now - this.lastWant >= WANT_EVERY_MS) this.#want();
    if (this.#stuck(now)) return;
    if (this.noneLeftSince && this.srcs.size === 0 && now - this.noneLeftSince > NO_SOURCE_WAIT_MS) {
      const what = this.m ? `${this.m.totalSize - this.verified} bytes still missing` : 'the files';
      this.fail(new ReceiveError('no_source', `The sender left, and nobody still in the room has the ${what}. What arrived is kept: open the sender's new link for the same files to resume.`));
    }
  }

  // stuck fails the download once a file was withdrawn and nothing is
  // asked of anyone (no connected source offers what is missing): at once
  // if the server said nobody else offers and every source is open, else
  // after NO_SOURCE_WAIT_MS, as receive.go's checkStuck.
  #stuck(now) {
    if (!this.changed || this.complete || this.inflight.size > 0) {
      this.stuckSince = 0;
      return false;
    }
    if (!this.stuckSince) this.stuckSince = now;
    // Every source told us what it has: none of them has what is missing.
    const settled = [...this.srcs.values()].every((s) => s.open && s.has);
    if ((this.noneLeft && settled) || now - this.stuckSince > NO_SOURCE_WAIT_MS) {
      this.fail(this.changed);
      return true;
    }
    return false;
  }

  // --- sources ---------------------------------------------------------

  /** Forgets source s: kind 'left' or 'banned' (it sent bad data). */
  drop(s, kind, err) {
    if (!this.srcs.has(s.id) || this.srcs.get(s.id) !== s) return;
    s.close();
    this.srcs.delete(s.id);
    for (const p of s.asked.keys()) this.#unask(p, s);
    s.asked.clear();
    s.askedBytes = 0;
    if (!s.connected && err && !(err.code === 'no_path')) {
      const n = (this.unreachable.get(s.id) ?? 0) + 1;
      this.unreachable.set(s.id, n);
      if (n >= MAX_CONNECT_TRIES) kind = 'banned';
    } else if (!s.connected && err?.code === 'no_path') {
      kind = 'banned'; // no better a second time, with the same candidates
    }
    if (kind === 'banned') {
      this.banned.add(s.id);
      this.banErr = err;
    }
    this.#sendSignal({ type: 'release', peer: s.id });
    this.ui.source?.({ kind, peer: s.id, host: s.id === this.host, err, complete: this.complete });
    if (this.srcs.size === 0 && !this.complete && this.lost) {
      this.fail(this.lost);
      return;
    }
    if (!this.complete) this.#want();
    this.fill();
  }

  /** A fatal error from one source that no other source can mend. */
  fatal(err) {
    this.fail(err);
  }

  /**
   * The first manifest whose signature checks out: the store opens (or
   * resumes) its files. Other sources wait for it.
   */
  openManifest(m, signed) {
    if (this.opening) return this.opening.then(() => {
      if (!equal(signed, this.signed)) throw new ReceiveError('forged', 'A source sent a different manifest.');
    });
    this.signed = signed;
    this.opening = (async () => {
      const store = opfsAvailable() ? new Store(m) : new IdbStore(m, { status: (t) => this.ui.status?.(t) });
      let haveBytes;
      try {
        haveBytes = await store.open();
      } catch (e) {
        store.close();
        this.fail(new ReceiveError('storage', e.message));
        throw e;
      }
      this.store = store;
      this.m = m;
      this.have = Bitmap.fromBytes(m.numChunks, haveBytes);
      for (let i = 0; i < m.numChunks; i++) if (this.have.has(i)) this.verified += m.chunk(i).size;
      this.resumed = this.verified;
      this.ui.manifest?.(m, this.resumed, this.have, store.persistent);
      this.ui.progress?.(this.verified, m.totalSize);
      if (this.have.count === m.numChunks) this.#finish();
    })();
    return this.opening;
  }

  /** Our have-bitmap over every piece (chunks and parity), for a source. */
  haveFrames() {
    const bm = new Bitmap(this.m.numPieces);
    for (let i = 0; i < this.m.numChunks; i++) if (this.have.has(i)) bm.set(i);
    const frames = fr.partFrames(fr.T_BITMAP, bm.bytes());
    // A page that will seed says so, so the sender counts what it holds
    // towards the swarm's full copy (as receive.go's 'S').
    return this.keepSignal ? [fr.flagFrame(fr.T_SERVES, true), ...frames] : frames;
  }

  /**
   * Source s no longer offers file fi (it changed on its disk, 'C'): what
   * was asked of it there goes back to the plan at once, for the other
   * sources, rather than stay owed until s is given up as stalled. Such a
   * piece may still come (sent before the change), so s.late keeps it
   * acceptable.
   */
  withdrawn(s, fi) {
    const { first, count } = this.m.fileChunks(fi);
    const name = this.m.files[fi].name;
    const whose = s.id === this.host ? "the sender's disk" : "a source's disk";
    this.changed = new ReceiveError('changed', `${name} changed on ${whose} after it was offered, and nobody in the room has it as it was. What arrived is kept: ask the sender to send it again.`);
    for (let p = first; p < first + count; p++) {
      s.has?.clear(p);
      const size = s.asked.get(p);
      if (size === undefined) continue;
      s.asked.delete(p);
      s.askedBytes -= size;
      s.late.add(p);
      this.#unask(p, s);
    }
    this.fill();
    if (!this.complete) this.#want(); // someone else in the room may have it
  }

  #unask(p, s) {
    if (this.inflight.get(p) !== s) return;
    this.inflight.delete(p);
    if (p < this.cursor) this.cursor = p;
  }

  /** Asks every connected source for what it has and we lack, up to its window. */
  fill() {
    if (!this.m || this.complete || this.ended) return;
    const m = this.m;
    for (const s of this.srcs.values()) {
      if (!s.has || !s.open) continue;
      const win = s.window();
      if (s.askedBytes > win - win / 4 || s.asked.size > MAX_ASKED - MAX_ASKED / 4) continue;
      const batch = [];
      // The cursor skips the verified and asked-for prefix once for all sources.
      while (this.cursor < m.numChunks && (this.have.has(this.cursor) || this.inflight.has(this.cursor))) this.cursor++;
      for (let p = this.cursor; p < m.numChunks && s.askedBytes < win && s.asked.size < MAX_ASKED; p++) {
        if (this.have.has(p) || this.inflight.has(p) || !s.has.has(p)) continue;
        const size = m.chunk(p).size;
        this.inflight.set(p, s);
        s.asked.set(p, size);
        s.askedBytes += size;
        batch.push(p);
      }
      if (batch.length > 0) {
        if (s.asked.size === batch.length) s.lastData = Date.now();
        for (const f of fr.listFrames(fr.T_WANT, batch)) s.send(f);
      }
    }
  }

  /** A whole piece from s: verified and stored, or s is banned. */
  piece(s, index, data) {
    let size = s.asked.get(index);
    if (size === undefined && s.late.delete(index)) size = this.m.chunk(index).size;
    if (size === undefined) {
      this.drop(s, 'banned', new ReceiveError('protocol', `A source sent piece ${index}, which was not asked for.`));
      return;
    }
    s.got += data.length;
    s.lastData = Date.now();
    this.store.piece(index, data).then((ok) => {
      if (this.ended) return;
      if (s.asked.delete(index)) s.askedBytes -= size;
      if (!ok) {
        this.#unask(index, s);
        this.drop(s, 'banned', new ReceiveError('corrupt', `A source sent data that failed verification (piece ${index}); it was refused and nothing of it was kept.`));
        return;
      }
      this.inflight.delete(index);
      if (!this.have.has(index)) {
        this.have.set(index);
        this.verified += size;
        this.news.push(index);
        if (this.haveTimer === null) this.haveTimer = setTimeout(() => this.#tellHaves(), HAVE_EVERY_MS);
        this.ui.progress?.(this.verified, this.m.totalSize, index);
      }
      if (this.have.count === this.m.numChunks) this.#finish();
      else this.fill();
    }, (e) => this.fail(new ReceiveError('storage', e.message)));
  }

  #tellHaves() {
    if (this.haveTimer !== null) clearTimeout(this.haveTimer);
    this.haveTimer = null;
    if (this.news.length === 0) return;
    const frames = fr.listFrames(fr.T_HAVE, this.news);
    this.news = [];
    for (const s of this.srcs.values()) if (s.open) for (const f of frames) s.send(f);
  }
}

/** One source: its handshake, its peer connection and its frames. */
class Source {
  constructor(dl, id) {
    this.dl = dl;
    this.id = id;
    this.inbox = new Inbox();
    this.session = null;
    this.pc = null;
    this.dc = null;
    this.connected = false; // the data channel opened
    this.open = false; // and the manifest is in: requests may go
    this.closed = false;
    this.has = null; // Bitmap of pieces it offers
    this.asked = new Map(); // piece -> size, asked and not yet verified
    this.late = new Set(); // asked, then withdrawn ('C'): may still come
    this.askedBytes = 0;
    this.got = 0;
    this.rate = 0;
    this.lastData = Date.now();
    this.backlog = null; // frames that come while the manifest opens (bounded)
    this.gone = false;
  }

  window() {
    return Math.min(MAX_WINDOW, Math.max(MIN_WINDOW + this.got, this.rate));
  }

  send(b) {
    if (this.dc?.readyState === 'open') this.dc.send(b);
  }

  close() {
    this.closed = true;
    this.inbox.close();
    try {
      this.dc?.close();
      this.pc?.close();
    } catch {
      // closing twice
    }
  }

  /** Ends this source with err (null: it is simply over). */
  end(err, kind = 'left') {
    if (this.closed) return;
    const fatal = err && ['wrong_password', 'tampered'].includes(err.code);
    if (fatal) this.dl.fatal(err);
    else this.dl.drop(this, kind, err);
  }

  deliver(data) {
    if (!this.inbox.put(data)) this.end(new ReceiveError('protocol', 'A source flooded the signalling.'));
  }

  peerLeft() {
    this.gone = true;
    if (!this.connected) this.end(new ReceiveError('no_source', 'The source left the room.'));
  }

  // next resolves with the next relay frame, null once closed or timed out.
  #next(timeout) {
    return this.inbox.next(timeout);
  }

  async run() {
    try {
      await this.#handshake();
      if (this.closed) return;
      await this.#connect();
    } catch (e) {
      if (this.closed) return;
      this.end(e instanceof ReceiveError ? e : new ReceiveError('protocol', e.message));
    }
  }

  async #handshake() {
    const dl = this.dl;
    const { initiator, hello } = c.startInitiator(dl.password, { room: dl.room, initiator: dl.self, responder: this.id });
    dl.relay(this.id, hello);
    const deadline = Date.now() + HANDSHAKE_TIMEOUT_MS;
    let reply;
    for (;;) {
      reply = await this.#next(Math.max(1, deadline - Date.now()));
      if (reply === null) return;
      if (reply === undefined) throw new ReceiveError('no_source', 'The source did not answer the password handshake in time.');
      let kind;
      try {
        kind = c.frameKind(reply);
      } catch {
        break; // finish says what is wrong with it
      }
      if (kind !== c.KIND_SEALED) break; // a sealed frame is an earlier session's
    }
    try {
      const r = initiator.finish(reply);
      this.session = r.session;
      dl.relay(this.id, r.confirm);
    } catch (e) {
      if (e.code === 'wrong_password') {
        if (!e.peerAborted) dl.relay(this.id, c.abortFrame(c.ABORT_WRONG_PASSWORD));
        throw new ReceiveError('wrong_password', WRONG_PASSWORD);
      }
      if (e.code === 'busy') throw new ReceiveError('no_source', 'The source is busy.');
      throw new ReceiveError('protocol', `The password handshake failed: ${e.message}`);
    }
  }

  #sealed(m) {
    this.dl.relay(this.id, this.session.seal(sg.encodeSignal(m)));
  }

  async #connect() {
    const dl = this.dl;
    const pc = new RTCPeerConnection({ iceServers: dl.iceServers });
    this.pc = pc;
    const dc = pc.createDataChannel(fr.DATA_CHANNEL_LABEL, { ordered: true });
    dc.binaryType = 'arraybuffer';
    this.dc = dc;
    pc.onicecandidate = (ev) => {
      const ci = ev.candidate;
      if (!ci || !ci.candidate || this.closed) return;
      this.#sealed({ t: 'cand', cand: { candidate: ci.candidate, sdpMid: ci.sdpMid ?? undefined, sdpMLineIndex: ci.sdpMLineIndex ?? undefined } });
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.#sealed({ t: 'offer', sdp: offer.sdp, lanes: 1 });

    const noPath = () => new ReceiveError('no_path', 'No network path to the sender was found: neither a direct connection nor a relay worked. If you are on different networks, the sender can run a signalling server with a relay (p2pxfer signal --turn).');
    const opened = new Promise((resolve, reject) => {
      dc.onopen = resolve;
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === 'failed') reject(noPath());
      };
      setTimeout(() => reject(noPath()), CONNECT_TIMEOUT_MS);
    });
    opened.catch(() => {});
    // Sealed signalling until the channel opens, and after (late candidates).
    this.#signalling();
    try {
      await opened;
    } catch (e) {
      if (!this.closed && this.session) {
        try {
          this.#sealed({ t: 'bye', why: e.code === 'no_path' ? sg.WHY_NO_PATH : 'connection failed' });
        } catch {
          // the session is spent
        }
      }
      throw e;
    }
    if (this.closed) return;
    this.connected = true;
    this.lastData = Date.now();
    dc.onmessage = (ev) => this.#frame(new Uint8Array(ev.data));
    dc.onclose = () => {
      if (!this.closed) this.end(this.finishedSent ? null : new ReceiveError('no_source', 'The source closed the connection.'));
    };
    pathOf(pc).then((path) => dl.ui.source?.({ kind: 'connected', peer: this.id, host: this.id === dl.host, path }));
  }

  async #signalling() {
    const pending = [];
    let haveRemote = false;
    while (!this.closed) {
      const b = await this.#next(0);
      if (b === null || b === undefined || this.closed) return;
      let m;
      try {
        m = sg.decodeSignal(this.session.open(b));
      } catch (e) {
        if (e.code === 'wrong_password' || e.peerAborted) {
          this.end(new ReceiveError('protocol', `The source ended the connection: ${e.message}`));
          return;
        }
        if (e.code === 'version') {
          this.end(new ReceiveError('protocol', 'The sender runs another p2pxfer version than this page: both need the same version.'));
          return;
        }
        this.end(new ReceiveError('tampered', 'The signalling was tampered with: a message between you and the sender did not authenticate. Try again, ideally on another network or signalling server.'));
        return;
      }
      try {
        switch (m.t) {
          case 'answer':
            if (haveRemote) throw new Error('a second answer');
            if (this.id === this.dl.host && m.info && m.info.length > 0 && !equal(m.info, this.dl.key)) {
              this.dl.fatal(new ReceiveError('forged', "The sender's key differs from the one the signalling server handed out: someone is impersonating the sender."));
              return;
            }
            await this.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
            haveRemote = true;
            for (const ci of pending) await this.pc.addIceCandidate(ci);
            pending.length = 0;
            break;
          case 'cand':
            if (haveRemote) await this.pc.addIceCandidate(m.cand);
            else if (pending.length < 64) pending.push(m.cand);
            break;
          case 'bye':
            this.end(m.why === sg.WHY_NO_PATH
              ? new ReceiveError('no_path', 'The sender found no network path to this browser. If you are on different networks, the sender can run a signalling server with a relay (p2pxfer signal --turn).')
              : new ReceiveError('no_source', `The source gave up: ${m.why || 'no reason given'}.`));
            return;
          default:
            // lanes, direct, punched: for CLI peers with more than one connection.
        }
      } catch (e) {
        if (this.closed) return;
        this.end(new ReceiveError('protocol', `The connection set-up failed: ${e.message}`));
        return;
      }
    }
  }

  // --- data channel frames ----------------------------------------------

  #frame(b) {
    if (this.closed) return;
    let f;
    try {
      if (this.backlog) {
        this.backlog.put(b);
        return;
      }
      f = fr.parseFrame(b);
      this.#handle(f, b);
    } catch (e) {
      this.#protocolError(e);
    }
  }

  #protocolError(e) {
    if (this.closed) return;
    this.send(fr.errorFrame('protocol error'));
    this.end(new ReceiveError('protocol', `A source broke the protocol: ${e.message}`), 'banned');
  }

  #handle(f, raw) {
    const dl = this.dl;
    const m = this.manifest;
    if (!m && f.type !== fr.T_MANIFEST && f.type !== fr.T_ERROR) throw new fr.ProtocolError(`frame ${f.type} before the manifest`);
    switch (f.type) {
      case fr.T_MANIFEST: {
        this.man ??= new fr.Assembler();
        const whole = this.man.add(f);
        if (!whole) return;
        const signed = Uint8Array.from(whole);
        this.backlog = new Backlog();
        openManifest(dl.key, dl.room, signed)
          .then((man) => dl.openManifest(man, signed).then(() => man))
          .then((man) => {
            if (this.closed) return;
            this.manifest = dl.m;
            this.pr = new fr.PieceReceiver(man.numPieces, (i) => man.piece(i).size);
            this.open = true;
            for (const h of dl.haveFrames()) this.send(h);
            const backlog = this.backlog.take();
            this.backlog = null;
            for (const x of backlog) this.#frame(x);
          })
          .catch((e) => {
            if (this.closed) return;
            if (e instanceof ManifestError && e.code === 'forged') {
              this.end(new ReceiveError('forged', "A source sent a manifest the sender did not sign; it was refused."), 'banned');
            } else if (e instanceof ManifestError) {
              dl.fatal(new ReceiveError('protocol', `The sender's file list cannot be used here: ${e.message}`));
            } else if (e instanceof ReceiveError) {
              this.end(e, 'banned');
            } else {
              this.end(new ReceiveError('protocol', e.message));
            }
          });
        return;
      }
      case fr.T_BITMAP: {
        this.bm ??= new fr.Assembler();
        const whole = this.bm.add(f);
        if (!whole) return;
        try {
          this.has = Bitmap.fromBytes(m.numPieces, whole);
        } catch (e) {
          throw new fr.ProtocolError(`have-bitmap: ${e.message}`);
        }
        dl.fill();
        return;
      }
      case fr.T_HAVE:
        for (const p of f.list) if (p >= m.numPieces) throw new fr.ProtocolError(`have for piece ${p} of ${m.numPieces}`);
        if (this.has) for (const p of f.list) this.has.set(p);
        dl.fill();
        return;
      case fr.T_DATA: {
        this.lastData = Date.now();
        const done = this.pr.add(f);
        if (done) dl.piece(this, done.index, done.data);
        return;
      }
      case fr.T_CHANGED: {
        if (f.file >= m.files.length) throw new fr.ProtocolError(`changed file ${f.file} of ${m.files.length}`);
        dl.withdrawn(this, f.file);
        dl.ui.status?.(`${m.files[f.file].name} changed on the sender's disk after it was offered (this is not corruption); it cannot be downloaded from there.`);
        return;
      }
      case fr.T_ERROR:
        this.end(new ReceiveError('no_source', `The source stopped: ${f.why}`));
        return;
      default:
        throw new fr.ProtocolError(`unexpected frame ${String.fromCharCode(f.type)} from a source`);
    }
  }
}

/** 'direct' or 'relay': how the connection's selected candidate pair travels. */
export async function pathOf(pc) {
  try {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) stats.forEach((s) => {
      if (!pair && s.type === 'candidate-pair' && s.state === 'succeeded' && (s.nominated || s.selected)) pair = s;
    });
    if (!pair) return 'unknown';
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return local?.candidateType === 'relay' || remote?.candidateType === 'relay' ? 'relay' : 'direct';
  } catch {
    return 'unknown';
  }
}
