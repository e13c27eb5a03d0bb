// The page of one room. The room ID comes from the path (/r/ROOM), the
// password from the fragment (#PASSWORD), which the browser never sends
// to the server; without one the page asks for it. It then joins the room
// on the signalling server that served it (signalling protocol v2, see
// room/protocol.go) and receives the room's files (js/receive.js) into
// the browser's private storage, offering each file to save once it is
// verified.

import * as sg from './js/signal.js';
import { Download, roomWords } from './js/receive.js';
import { Seeder, MAX_FAILURES } from './js/seed.js';
import { hostFiles } from './js/send.js';
import { fmt, storageProblem, opfsAvailable } from './js/store.js';
import { flatName, saveToDirectory, Selection } from './js/folders.js';
import { MAX_AGE_DAYS, MAX_KEPT } from './js/db.js';

const ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz";
const ROOM_ID_LEN = 8;
// How long the server may take to answer the join.
const JOIN_TIMEOUT_MS = 15000;

const $ = (id) => document.getElementById(id);

// roomFromPath returns the room ID at the end of the path, or "" when
// it is not one.
export function roomFromPath(pathname) {
  const id = decodeURIComponent(pathname.split("/").pop() || "").trim().toLowerCase();
  if (id.length !== ROOM_ID_LEN || [...id].some((c) => !ALPHABET.includes(c))) return "";
  return id;
}

// passwordFromFragment returns the password in location.hash ("" if none).
export function passwordFromFragment(hash) {
  const raw = hash.startsWith("#") ? hash.slice(1) : hash;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

// status shows what the page is doing; state is for tests and styles.
export function status(text, state = "", error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
  if (state) document.body.dataset.state = state;
}

// askPassword shows the form and resolves with what was typed.
function askPassword(why = "") {
  const form = $("password-form");
  form.hidden = false;
  $("password").value = "";
  $("password").focus();
  if (why) status(why, "password", true);
  else status("Type the password the sender gave you.", "password");
  return new Promise((resolve) => {
    const submit = (ev) => {
      ev.preventDefault();
      const pw = $("password").value.trim();
      if (!pw) return;
      form.hidden = true;
      form.removeEventListener("submit", submit);
      resolve(pw);
    };
    form.addEventListener("submit", submit);
  });
}

// signalURL is the server's WebSocket: /ws next to /r/, relative so that
// it holds behind a proxy that serves the server under a path.
export function signalURL(href) {
  const u = new URL("../ws", href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  u.hash = "";
  u.search = "";
  return u.href;
}


// join opens the signalling WebSocket and joins roomID. It resolves with
// the open socket and the joined message (signal.js's form: key as bytes).
export function join(roomID) {
  return new Promise((resolve, reject) => {
    let ws;
    try {
      ws = new WebSocket(signalURL(location.href));
    } catch (err) {
      reject(new Error(`This page cannot connect to its server: ${err.message}`));
      return;
    }
    let done = false;
    const timer = setTimeout(() => {
      fail("The signalling server did not answer in time. Check your connection and reload the page.");
      ws.close();
    }, JOIN_TIMEOUT_MS);
    const fail = (msg) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.removeEventListener("message", onMessage);
      reject(new Error(msg));
    };
    const onMessage = (ev) => {
      let m;
      try {
        m = sg.decodeMessage(ev.data);
      } catch {
        ws.close();
        fail("The signalling server sent something this page does not understand. Reload the page.");
        return;
      }
      if (m.type === "joined") {
        if (done) return;
        done = true;
        clearTimeout(timer);
        ws.removeEventListener("message", onMessage);
        resolve({ ws, joined: m });
      } else if (m.type === "error") {
        ws.close();
        fail(roomWords(m.code, m.text));
      }
    };
    ws.addEventListener("open", () => {
      ws.send(sg.encodeMessage({ type: "join", v: sg.PROTOCOL_VERSION, room: roomID }));
    });
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", () => fail("Cannot reach the signalling server. Check that the sender is still running, and reload the page."));
  });
}

// The file list: one row per file, with its progress and, once every
// file is verified, its Save button.
class FileList {
  constructor(m, have) {
    this.m = m;
    this.rows = [];
    this.done = new Float64Array(m.files.length);
    const list = $("file-list");
    list.replaceChildren();
    m.files.forEach((f, i) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = f.name;
      const size = document.createElement("span");
      size.className = "size";
      size.textContent = fmt(f.size);
      const bar = document.createElement("progress");
      bar.max = Math.max(1, f.size);
      bar.value = 0;
      const actions = document.createElement("span");
      actions.className = "actions";
      li.append(name, size, bar, actions);
      list.append(li);
      this.rows.push({ li, bar, actions });
      const { first, count } = m.fileChunks(i);
      for (let c = first; c < first + count; c++) if (have.has(c)) this.done[i] += m.chunk(c).size;
      bar.value = this.done[i];
    });
    const n = m.files.length;
    $("total").textContent = `${n} ${n === 1 ? "file" : "files"}, ${fmt(m.totalSize)}`;
    $("files").hidden = false;
  }

  // chunk notes that chunk c is verified.
  chunk(c) {
    const ref = this.m.chunk(c);
    this.done[ref.file] += ref.size;
    this.rows[ref.file].bar.value = this.done[ref.file];
  }

  // offer puts a Save button (and Save as…, where the browser has a
  // file picker) on every file; allSaved runs once each was saved.
  async offer(store, allSaved = () => {}) {
    const saved = new Set();
    const save = (i) => {
      const had = saved.size;
      saved.add(i);
      if (saved.size === this.m.files.length && had < saved.size) allSaved();
    };
    this.markSaved = save;
    for (let i = 0; i < this.m.files.length; i++) {
      const f = this.m.files[i];
      const row = this.rows[i];
      row.bar.value = row.bar.max;
      const file = await store.file(i);
      const base = f.name.split("/").pop();
      const a = document.createElement("a");
      a.className = "save";
      a.href = URL.createObjectURL(file);
      // Saved on its own, a file of a folder keeps its path in its name.
      a.download = flatName(f.name);
      a.dataset.path = f.name;
      a.textContent = "Save";
      a.dataset.file = String(i);
      a.addEventListener("click", () => save(i));
      row.actions.append(a);
      if (typeof window.showSaveFilePicker === "function") {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = "Save as…";
        b.addEventListener("click", async () => {
          try {
            const h = await window.showSaveFilePicker({ suggestedName: base });
            await file.stream().pipeTo(await h.createWritable());
            status(`Saved ${base}.`, "");
            save(i);
          } catch (e) {
            if (e?.name !== "AbortError") status(`Could not save ${base}: ${e.message}`, "", true);
          }
        });
        row.actions.append(b);
      }
    }
    if (typeof window.showDirectoryPicker === "function") {
      const all = $("save-all");
      all.hidden = false;
      $("save-all-note").hidden = false;
      all.onclick = async () => {
        let dir;
        try {
          dir = await window.showDirectoryPicker({ id: "p2pxfer", mode: "readwrite" });
        } catch (e) {
          if (e?.name !== "AbortError") status(`Could not open that folder: ${e.message}`, "", true);
          return;
        }
        all.disabled = true; // one save at a time
        try {
          await this.saveAllTo(dir);
        } finally {
          all.disabled = false;
        }
      };
    }
    this.store = store;
  }

  // saveAllTo saves every file under dir (a FileSystemDirectoryHandle),
  // with its folders; a file already there is replaced only if the user
  // says so. Tests hand it a folder of the private file system, as no
  // automation can click the browser's folder picker.
  async saveAllTo(dir) {
    const files = this.m.files.map((f, i) => ({ name: f.name, blob: () => this.store.file(i) }));
    status("Saving into the folder…", "saving");
    try {
      const r = await saveToDirectory(dir, files, this.m.dirs, {
        ask: askReplace,
        progress: (n, t) => status(`Saving into the folder: ${n} of ${t} files…`, "saving"),
      });
      if (!r.cancelled) this.m.files.forEach((_, i) => this.markSaved?.(i));
      if (r.cancelled) status("Nothing was saved: the folder already has files of these names.", "saved");
      else status(`Saved ${r.saved} ${r.saved === 1 ? "file" : "files"} into ${dir.name || "the folder"}${r.skipped ? `; kept the ${r.skipped} already there` : ""}.`, "saved");
      return r;
    } catch (e) {
      status(e.name === "FolderError" ? e.message : `Could not save into that folder: ${e.message}`, "saved", true);
      return null;
    }
  }
}

// askReplace shows which files the chosen folder already has and waits
// for the user's choice: "replace", "skip" (keep theirs, save the rest)
// or "cancel".
function askReplace(existing) {
  const box = $("replace");
  const shown = existing.slice(0, 5).join(", ") + (existing.length > 5 ? `, and ${existing.length - 5} more` : "");
  $("replace-what").textContent = `${existing.length === 1 ? "A file" : `${existing.length} files`} of these names already ${existing.length === 1 ? "exists" : "exist"} in that folder: ${shown}.`;
  box.hidden = false;
  document.body.dataset.asking = "replace";
  return new Promise((resolve) => {
    const done = (choice) => {
      box.hidden = true;
      delete document.body.dataset.asking;
      for (const id of ["replace-yes", "replace-skip", "replace-no"]) $(id).onclick = null;
      resolve(choice);
    };
    $("replace-yes").onclick = () => done("replace");
    $("replace-skip").onclick = () => done("skip");
    $("replace-no").onclick = () => done("cancel");
  });
}

// Rate: what was verified over the last few seconds.
class Rate {
  constructor() {
    this.samples = [];
  }
  add(done) {
    const now = performance.now();
    this.samples.push([now, done]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
  }
  get perSecond() {
    if (this.samples.length < 2) return 0;
    const [t0, d0] = this.samples[0];
    const [t1, d1] = this.samples[this.samples.length - 1];
    return t1 > t0 ? ((d1 - d0) * 1000) / (t1 - t0) : 0;
  }
}

async function receive(roomID, password) {
  status("Connecting to the signalling server…", "connecting");
  let session;
  try {
    session = await join(roomID);
  } catch (err) {
    status(err.message, "error", true);
    return "error";
  }
  status("In the room. Connecting to the sender…", "joined");
  let list = null;
  let total = 0;
  let done = 0;
  const rate = new Rate();
  const started = performance.now();
  const paths = new Map();
  const showPath = () => {
    const kinds = [...new Set(paths.values())];
    $("path").textContent = kinds.length === 0 ? "" : `Path: ${kinds.map((k) => (k === "relay" ? "through a relay" : k === "direct" ? "direct" : k)).join(", ")}`;
    document.body.dataset.path = kinds.join(",");
  };
  const rateTimer = setInterval(() => {
    rate.add(done);
    if (total > 0 && done < total) {
      $("rate").textContent = `${fmt(done)} of ${fmt(total)} · ${fmt(rate.perSecond)}/s`;
    }
  }, 1000);
  let lastTitle = "";
  const dl = new Download({
    ws: session.ws,
    joined: session.joined,
    password,
    keepSignal: true,
    ui: {
      manifest(m, resumed, have, persistent) {
        if (!persistent) {
          $("note").textContent = "This browser refused the page storage that outlives the tab (private windows may), so the files are kept in memory: keep the tab open until you have saved them (a reload starts over).";
          $("note").hidden = false;
        } else if (!opfsAvailable()) {
          $("note").textContent = `This page was opened over plain http from another machine, so it keeps what arrives in the browser's site storage (IndexedDB): a reload resumes. That copy is removed once you have saved every file; an unfinished or unsaved download is removed after ${MAX_AGE_DAYS} days, or once ${MAX_KEPT} newer ones are kept.`;
          $("note").hidden = false;
        }
        list = new FileList(m, have);
        total = m.totalSize;
        done = resumed;
        rate.add(done);
        document.body.dataset.resumed = String(resumed);
        document.body.dataset.manifestAt = String(Math.round(performance.now()));
        status(resumed > 0 ? `Resuming: ${fmt(resumed)} of ${fmt(total)} already here.` : "Receiving…", "receiving");
      },
      progress(d, t, chunk) {
        if (list && chunk !== undefined) list.chunk(chunk);
        done = d;
        document.body.dataset.verified = String(d);
        const pct = t > 0 ? Math.floor((d * 100) / t) : 100;
        const title = `${pct}% — p2pxfer`;
        if (title !== lastTitle && d < t) {
          document.title = title;
          lastTitle = title;
        }
      },
      source(ev) {
        if (ev.kind === "connected") {
          paths.set(ev.peer, ev.path);
          showPath();
        } else if (!ev.complete) {
          paths.delete(ev.peer);
          showPath();
          if (ev.kind === "banned") document.body.dataset.banned = "1";
          if (ev.kind === "banned" && ev.err) status(`${ev.err.message} Looking for another source…`, "receiving");
        }
      },
      status(text) {
        status(text, "");
      },
    },
  });
  try {
    const store = await dl.run();
    clearInterval(rateTimer);
    if (!list) list = new FileList(store.manifest, dl.have);
    // A copy in the site's storage (plain http) goes once every file was
    // saved: the Save links stay good while the tab is open.
    let removed = false;
    await list.offer(store, async () => {
      if (!store.forgetWhenSaved || removed) return;
      removed = true;
      try {
        await store.forget();
        $("forget").hidden = true;
        document.body.dataset.forgotten = "1";
        $("note").textContent = "Every file was saved, so the copy in this browser's storage was removed.";
        $("note").hidden = false;
      } catch (e) {
        status(`Could not remove the files from this browser's storage: ${e.message}`, "", true);
      }
    });
    // The "Save all to a folder…" button's code, for tests (see saveAllTo).
    window.p2pxfer = { saveAllTo: (dir) => list.saveAllTo(dir) };
    const secs = (performance.now() - started) / 1000;
    $("rate").textContent = `${fmt(total)} in ${secs.toFixed(1)} s (${fmt((total - (dl.resumed || 0)) / Math.max(secs, 0.001))}/s)`;
    document.body.dataset.doneAt = String(Math.round(performance.now()));
    document.title = "Received — p2pxfer";
    status("Received: every file is verified. Save each one below.", "done");
    // While the tab stays open it passes the files on to later receivers.
    const seeder = new Seeder(dl, store, {
      served(n) {
        document.body.dataset.served = String(n);
        $("seeding").textContent = `While this tab stays open it shares the files with other receivers in the room: ${n} served so far.`;
      },
      closed(why) {
        $("seeding").textContent = why;
      },
    }).start();
    $("seeding").textContent = "While this tab stays open it shares the files with other receivers in the room.";
    $("seeding").hidden = false;
    if (store.persistent) {
      // The browser keeps the files until the site's data is cleared:
      // once saved, the user may take them out.
      const forget = $("forget");
      forget.hidden = false;
      forget.addEventListener("click", async () => {
        seeder.stop();
        document.querySelectorAll("a.save").forEach((a) => {
          URL.revokeObjectURL(a.href);
          a.remove();
        });
        $("save-all").hidden = true;
        $("save-all-note").hidden = true;
        try {
          if (!removed) await store.forget();
          removed = true;
          forget.hidden = true;
          $("seeding").hidden = true;
          status("Removed from this browser's storage. Save them before you remove them next time.", "forgotten");
        } catch (e) {
          status(`Could not remove the files from this browser's storage: ${e.message}`, "", true);
        }
      }, { once: true });
    }
    return "done";
  } catch (err) {
    clearInterval(rateTimer);
    document.body.dataset.error = err.code || "error";
    status(err.message, "error", true);
    return err.code === "wrong_password" ? "wrong_password" : "error";
  }
}

// sendMain is the page at /send: pick or drop files, then the page opens
// a room for them and serves them while it stays open.
async function sendMain() {
  document.title = "Send — p2pxfer";
  $("send").hidden = false;
  status("Choose the files or a folder to send.", "pick");
  // Resolves with a promise of the Selection, which the try below awaits.
  const picked = new Promise((resolve) => {
    for (const id of ["pick", "pick-folder"]) {
      const pick = $(id);
      pick.addEventListener("change", () => {
        const list = [...pick.files];
        if (list.length > 0) resolve(Promise.resolve().then(() => Selection.fromPicked(list)));
      });
    }
    const drop = $("drop");
    drop.addEventListener("dragover", (ev) => {
      ev.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (ev) => {
      ev.preventDefault();
      drop.classList.remove("over");
      // Entries must be taken while the event runs; folders are walked after.
      const items = [...(ev.dataTransfer?.items ?? [])].filter((it) => it.kind === "file");
      const entries = items.map((it) => (typeof it.webkitGetAsEntry === "function" ? it.webkitGetAsEntry() : null));
      const plain = items.filter((_, i) => !entries[i]).map((it) => it.getAsFile()).filter(Boolean);
      if (items.length > 0) resolve(Selection.fromEntries(entries, plain));
    });
  });
  let sel;
  try {
    sel = await picked;
  } catch (err) {
    status(`Could not read what was chosen: ${err.message}`, "error", true);
    return;
  }
  $("drop").hidden = true;
  const files = sel.files;
  if (files.length === 0 && sel.dirs.length === 0) {
    status("There is nothing to send in what was chosen.", "error", true);
    return;
  }
  const total = files.reduce((n, f) => n + f.file.size, 0);
  status(`Preparing ${files.length} ${files.length === 1 ? "file" : "files"}, ${fmt(total)}…`, "hashing");
  if (sel.skipped.length > 0) {
    $("skipped").textContent = `Left out, as p2pxfer send leaves them out (a receiver could not hold their names): ${sel.skipped.slice(0, 5).join(", ")}${sel.skipped.length > 5 ? `, and ${sel.skipped.length - 5} more` : ""}.`;
    $("skipped").hidden = false;
  }
  let ws;
  // Connected once the files are hashed: the server drops a connection
  // that opens no room within seconds.
  const connect = () => new Promise((resolve, reject) => {
    const w = new WebSocket(signalURL(location.href));
    w.addEventListener("open", () => resolve(w));
    w.addEventListener("error", () => reject(new Error("Cannot reach the signalling server. Reload the page to try again.")));
  });
  try {
    ({ ws } = await hostFiles(connect, files, {
      hashing(done, t) {
        status(`Preparing: ${Math.floor((done * 100) / Math.max(t, 1))}% of ${fmt(t)} hashed…`, "hashing");
      },
      ready({ room, password }) {
        const link = new URL(`r/${room}`, location.href);
        link.hash = password;
        $("offer-link").href = link.href;
        $("offer-link").textContent = link.href;
        $("offer-cmd").textContent = `p2pxfer recv --signal ${signalURL(location.href)} ${room}`;
        $("offer-password").textContent = password;
        $("offer").hidden = false;
        document.body.dataset.room = room;
        document.body.dataset.password = password;
        status(`Sending ${files.length} ${files.length === 1 ? "file" : "files"}, ${fmt(total)}, in room ${room}. Waiting for receivers…`, "sending");
      },
      served(n) {
        document.body.dataset.served = String(n);
        status(`${n} ${n === 1 ? "receiver has" : "receivers have"} every file. Keep this tab open for more, or close it.`, "sending");
      },
      failed(n) {
        document.body.dataset.failures = String(n);
        status(`${n} failed password ${n === 1 ? "attempt" : "attempts"} in room ${document.body.dataset.room}: it closes at ${MAX_FAILURES}. Keep this tab open for the receivers who have the link.`, "sending");
      },
      closed(why) {
        status(why, "error", true);
      },
    }, sel.dirs));
  } catch (err) {
    status(err.message, "error", true);
  }
  ws?.addEventListener("close", () => {
    if (document.body.dataset.state === "sending") status("The connection to the signalling server closed: receivers can no longer join. Reload the page to send again.", "error", true);
  });
}

async function main() {
  if (location.pathname.endsWith("/send")) {
    await sendMain();
    return;
  }
  const roomID = roomFromPath(location.pathname);
  if (!roomID) {
    status("This link does not name a room. Check that you copied all of it.", "error", true);
    return;
  }
  document.title = `Room ${roomID} — p2pxfer`;
  const code = document.createElement("code");
  code.textContent = roomID;
  $("room").replaceChildren("Room ", code);
  const problem = storageProblem();
  if (problem) {
    status(problem, "error", true);
    return;
  }

  let password = passwordFromFragment(location.hash);
  if (!password) password = await askPassword();
  // A wrong password lets the user try again without reloading; every try
  // counts against the room's limit at the server.
  while ((await receive(roomID, password)) === "wrong_password") {
    password = await askPassword($("status").textContent);
  }
}

main();
