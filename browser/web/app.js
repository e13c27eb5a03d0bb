// The page of one room. The room ID comes from the path (/r/ROOM), the
// password from the fragment (#PASSWORD), which the browser never sends
// to the server; without one the page asks for it. It then joins the room
// on the signalling server that served it (signalling protocol v2, see
// room/protocol.go).

const ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz";
const ROOM_ID_LEN = 8;
const PROTOCOL_VERSION = 2;
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

// Plain words for the server's error codes (room/errors.go).
const codeWords = {
  room_not_found: "There is no such room on this server. Check the link, or ask the sender whether p2pxfer send is still running.",
  room_closed: "The sender closed this room.",
  too_many_failures: "This room was closed after too many wrong passwords.",
  rate_limited: "Too many attempts from your address. Wait a minute, then reload the page.",
  server_full: "The server is full. Try again in a few minutes.",
  version: "This page and the server speak different versions. Reload the page.",
};

// askPassword shows the form and resolves with what was typed.
function askPassword() {
  const form = $("password-form");
  form.hidden = false;
  $("password").focus();
  status("Type the password the sender gave you.", "password");
  return new Promise((resolve) => {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const pw = $("password").value.trim();
      if (!pw) return;
      form.hidden = true;
      resolve(pw);
    });
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
// the open socket and the joined message.
export function join(roomID) {
  return new Promise((resolve, reject) => {
    let ws;
    try {
      ws = new WebSocket(signalURL(location.href));
    } catch (err) {
      reject(new Error(`This page cannot connect to its server: ${err.message}`));
      return;
    }
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error("The signalling server did not answer in time. Check your connection and reload the page."));
    }, JOIN_TIMEOUT_MS);
    const fail = (msg) => {
      clearTimeout(timer);
      reject(new Error(msg));
    };
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ type: "join", v: PROTOCOL_VERSION, room: roomID }));
    });
    ws.addEventListener("message", (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        ws.close();
        fail("The signalling server sent something this page does not understand. Reload the page.");
        return;
      }
      if (m.type === "joined") {
        clearTimeout(timer);
        resolve({ ws, joined: m });
      } else if (m.type === "error") {
        ws.close();
        fail(codeWords[m.code] || `The signalling server refused: ${m.text || m.code}.`);
      }
    }, { once: false });
    ws.addEventListener("close", () => fail("Cannot reach the signalling server. Check that the sender is still running, and reload the page."));
  });
}

async function main() {
  const roomID = roomFromPath(location.pathname);
  if (!roomID) {
    status("This link does not name a room. Check that you copied all of it.", "error", true);
    return;
  }
  document.title = `Room ${roomID} — p2pxfer`;
  const code = document.createElement("code");
  code.textContent = roomID;
  $("room").replaceChildren("Room ", code);

  let password = passwordFromFragment(location.hash);
  if (!password) password = await askPassword();

  status("Connecting to the signalling server…", "connecting");
  let session;
  try {
    session = await join(roomID);
  } catch (err) {
    status(err.message, "error", true);
    return;
  }
  status("In the room. Waiting for the sender…", "joined");
  session.ws.addEventListener("close", () => {
    status("The connection to the signalling server closed. Reload the page to try again.", "error", true);
  });
  // The receive protocol (js/) takes the session and password from here.
  void password;
}

main();
