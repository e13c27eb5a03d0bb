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
//	  |<- 'F' finished ------------------------------------------|
//
// A seed has no signing key: the answer carries no info, and receivers
// check the manifest against the room's key. A failed password handshake
// is reported to the server (fail), which closes the room after its limit.

import * as c from './cpace.js';
import * as sg from './signal.js';
import * as fr from './frames.js';
import { Bitmap } from './bitmap.js';
import { Inbox } from './inbox.js';
import { HANDSHAKE_TIMEOUT_MS, CONNECT_TIMEOUT_MS } from './timeouts.js';

/** Receivers served at once by a page that received (a seed). */
export const SEED_SLOTS = 2;
// And by a page that sends: the server's slots bound it first, as
// peer/serve.go's MaxConcurrent.
const HOST_SESSIONS = 16;
// A host closes its room after this many failed handshakes (send's default).
const MAX_FAILURES = 10;
// Requests one receiver may queue (peer/serve.go's maxOutstanding).
const MAX_OUTSTANDING = 4096;
// The channel's send buffer is kept between these, so memory stays
// bounded whatever the receiver asks.
const HIGH_WATER = 4 << 20;
const LOW_WATER = 1 << 20;

/**
 * Serves the finished download dl (receive.js's Download, with its
 * signalling socket still open) until the socket closes. ui.served(n) is
 * told how many receivers finished from us.
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
    this.slots = this.host ? HOST_SESSIONS : SEED_SLOTS;
    this.sessions = new Map();
    this.finished = 0;
    const m = dl.m;
    this.bitmap = new Bitmap(m.numPieces);
    for (let i = 0; i < m.numChunks; i++) this.bitmap.set(i);
  }

  // file is file i of the store, looked up once.
  async file(i) {
    this.files ??= new Map();
    let f = this.files.get(i);
    if (!f) {
      f = await this.store.file(i);
      this.files.set(i, f);
    }
    return f;
  }

  start() {
    const ws = this.dl.ws;
    ws.addEventListener('message', (ev) => this.#onSignal(ev.data));
    ws.addEventListener('close', () => {
      for (const s of this.sessions.values()) s.close();
      this.sessions.clear();
    });
    if (!this.host) this.#send({ type: 'seed', slots: SEED_SLOTS, complete: true });
    return this;
  }

  /** Ends every session and leaves the room. */
  stop() {
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
    try {
      this.dl.ws.close();
    } catch {
      // closed already
    }
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
      let s = this.sessions.get(m.peer);
      if (!s) {
        if (this.sessions.size >= this.slots) return; // the server assigns no more than our slots
        s = new Session(this, m.peer);
        this.sessions.set(m.peer, s);
        s.run();
      }
      s.deliver(m.data);
    } else if (m.type === 'left' || (m.type === 'error' && m.peer)) {
      this.sessions.get(m.peer)?.close();
      this.sessions.delete(m.peer);
    }
  }

  ended(s, ok, authFail) {
    if (this.sessions.get(s.id) !== s) return;
    this.sessions.delete(s.id);
    if (authFail && !this.host) this.#send({ type: 'fail' }); // a host counts its own (the room closes with it)
    if (authFail) this.failures = (this.failures ?? 0) + 1;
    if (this.host && this.failures >= MAX_FAILURES) {
      // Each failure was an online password guess: as send, close the room.
      this.#send({ type: 'close' });
      this.ui.closed?.(`The room was closed after ${this.failures} wrong passwords.`);
      try {
        this.dl.ws.close();
      } catch {
        // closed already
      }
    }
    if (ok) {
      this.finished++;
      this.ui.served?.(this.finished);
    }
  }

  relay(peer, data) {
    this.#send({ type: 'relay', peer, data });
  }
}

/** One receiver we serve. */
class Session {
  constructor(seeder, id) {
    this.seeder = seeder;
    this.id = id;
    this.inbox = new Inbox();
    this.closed = false;
    this.queue = [];
    this.cancelled = new Map();
    this.sending = false;
  }

  deliver(b) {
    if (!this.inbox.put(b)) this.close(); // flooding
  }

  #next(timeout) {
    return this.inbox.next(timeout);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.inbox.close();
    try {
      this.pc?.close();
    } catch {
      // closed already
    }
  }

  #end(ok, authFail = false) {
    this.close();
    this.seeder.ended(this, ok, authFail);
  }

  async run() {
    const dl = this.seeder.dl;
    const hello = await this.#next(HANDSHAKE_TIMEOUT_MS);
    if (!hello) return this.#end(false);
    let r;
    try {
      r = c.respond(dl.password, { room: dl.room, initiator: this.id, responder: dl.self }, hello);
    } catch (e) {
      if (e.code === 'version') this.seeder.relay(this.id, c.abortFrame(c.ABORT_VERSION));
      return this.#end(false);
    }
    this.seeder.relay(this.id, r.reply);
    const confirm = await this.#next(HANDSHAKE_TIMEOUT_MS);
    try {
      if (!confirm) throw new Error('no confirm');
      this.session = r.responder.finish(confirm);
    } catch (e) {
      if (e.code === 'wrong_password' && !e.peerAborted) this.seeder.relay(this.id, c.abortFrame(c.ABORT_WRONG_PASSWORD));
      return this.#end(false, !this.closed);
    }
    try {
      await this.#accept();
    } catch {
      this.#end(false);
    }
  }

  #sealed(m) {
    this.seeder.relay(this.id, this.session.seal(sg.encodeSignal(m)));
  }

  async #accept() {
    const dl = this.seeder.dl;
    const pc = new RTCPeerConnection({ iceServers: dl.iceServers });
    this.pc = pc;
    pc.onicecandidate = (ev) => {
      const ci = ev.candidate;
      if (!ci || !ci.candidate || this.closed) return;
      this.#sealed({ t: 'cand', cand: { candidate: ci.candidate, sdpMid: ci.sdpMid ?? undefined, sdpMLineIndex: ci.sdpMLineIndex ?? undefined } });
    };
    const opened = new Promise((resolve, reject) => {
      pc.ondatachannel = (ev) => {
        const ch = ev.channel;
        if (ch.label !== fr.DATA_CHANNEL_LABEL) {
          reject(new Error('unexpected data channel'));
          return;
        }
        ch.binaryType = 'arraybuffer';
        this.dc = ch;
        if (ch.readyState === 'open') resolve();
        else ch.onopen = resolve;
      };
      setTimeout(() => reject(new Error('no connection in time')), CONNECT_TIMEOUT_MS);
    });
    opened.catch(() => {});
    let haveRemote = false;
    const pending = [];
    (async () => {
      while (!this.closed) {
        const b = await this.#next(0);
        if (!b || this.closed) return;
        let m;
        try {
          m = sg.decodeSignal(this.session.open(b));
        } catch {
          this.#end(false);
          return;
        }
        try {
          if (m.t === 'offer' && !haveRemote) {
            await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
            haveRemote = true;
            const ans = await pc.createAnswer();
            await pc.setLocalDescription(ans);
            this.#sealed({ t: 'answer', sdp: ans.sdp, lanes: 1, info: this.seeder.info ?? undefined });
            for (const ci of pending) await pc.addIceCandidate(ci);
            pending.length = 0;
          } else if (m.t === 'cand') {
            if (haveRemote) await pc.addIceCandidate(m.cand);
            else if (pending.length < 64) pending.push(m.cand);
          } else if (m.t === 'bye') {
            this.#end(false);
            return;
          }
        } catch {
          this.#end(false);
          return;
        }
      }
    })();
    await opened;
    if (this.closed) return;
    this.#serve();
  }

  #serve() {
    const dc = this.dc;
    const m = this.seeder.dl.m;
    for (const f of fr.partFrames(fr.T_MANIFEST, this.seeder.dl.signed)) dc.send(f);
    for (const f of fr.partFrames(fr.T_BITMAP, this.seeder.bitmap.bytes())) dc.send(f);
    dc.bufferedAmountLowThreshold = LOW_WATER;
    dc.onbufferedamountlow = () => this.#pump();
    dc.onclose = () => this.#end(false);
    const bm = new fr.Assembler();
    dc.onmessage = (ev) => {
      if (this.closed) return;
      let f;
      try {
        f = fr.parseFrame(new Uint8Array(ev.data));
        switch (f.type) {
          case fr.T_WANT:
            for (const p of f.list) {
              if (p >= m.numChunks) throw new fr.ProtocolError(`request for piece ${p}, which we do not offer`);
              if (this.queue.length >= MAX_OUTSTANDING) throw new fr.ProtocolError('too many outstanding requests');
              this.queue.push(p);
            }
            this.#pump();
            break;
          case fr.T_CANCEL:
            for (const p of f.list) this.cancelled.set(p, (this.cancelled.get(p) ?? 0) + 1);
            break;
          case fr.T_HAVE:
            for (const p of f.list) if (p >= m.numPieces) throw new fr.ProtocolError(`have for piece ${p}`);
            break;
          case fr.T_BITMAP:
            bm.add(f);
            break;
          case fr.T_SERVES:
            break;
          case fr.T_FINISHED:
            this.#end(true);
            break;
          case fr.T_ERROR:
            this.#end(false);
            break;
          default:
            throw new fr.ProtocolError(`unexpected frame ${f.type}`);
        }
      } catch (e) {
        try {
          dc.send(fr.errorFrame('protocol error'));
        } catch {
          // closing anyway
        }
        this.#end(false);
      }
    };
  }

  // pump sends queued pieces while the channel's buffer has room; one
  // piece is read from storage at a time.
  async #pump() {
    if (this.sending || this.closed) return;
    this.sending = true;
    try {
      const m = this.seeder.dl.m;
      while (!this.closed && this.queue.length > 0 && this.dc.bufferedAmount < HIGH_WATER) {
        const p = this.queue.shift();
        const n = this.cancelled.get(p) ?? 0;
        if (n > 0) {
          if (n === 1) this.cancelled.delete(p);
          else this.cancelled.set(p, n - 1);
          continue;
        }
        const ch = m.chunk(p);
        const file = await this.seeder.file(ch.file);
        const data = new Uint8Array(await file.slice(ch.offset, ch.offset + ch.size).arrayBuffer());
        if (this.closed) return;
        for (let off = 0; off < data.length; off += fr.MAX_DATA_PAYLOAD) {
          this.dc.send(fr.dataFrame(p, off, data.subarray(off, Math.min(off + fr.MAX_DATA_PAYLOAD, data.length))));
        }
      }
    } catch {
      this.#end(false);
    } finally {
      this.sending = false;
    }
  }
}
