// The demo chat: the official socket.io-client browser bundle (the global `io`, copied from
// node_modules into static/vendor/ by `make`) talking to the /chat namespace of project/sockets.py.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), transport: $("transport"), whoami: $("whoami"), messages: $("messages"),
  typing: $("typing"), nick: $("nick"), room: $("room"), text: $("text"), file: $("file"),
};
// Shown inline; anything else becomes a download of type application/octet-stream, so a
// received HTML or SVG file can never run as this page's origin.
const INLINE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const me = { nick: "", room: "lobby", maxFileBytes: 512 * 1024 }; // the server's welcome corrects these

// auth is a function, so every reconnection sends the current nickname and room again.
const socket = io("/chat", { auth: (send) => send({ nick: me.nick, room: me.room }) });
const manager = socket.io;

// -- connection status: the socket's connect/disconnect, the Manager's reconnect events ------
function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}
socket.on("connect", () => setStatus("connected", "connected"));
socket.on("disconnect", (reason) => setStatus("disconnected", `disconnected (${reason})`));
socket.on("connect_error", (error) => {
  if (!socket.active) setStatus("disconnected", `refused: ${error.message}`); // the server said no
});
manager.on("reconnect_attempt", (attempt) => setStatus("reconnecting", `reconnecting (attempt ${attempt})…`));
manager.on("reconnect_failed", () => setStatus("disconnected", "disconnected (gave up reconnecting)"));
// Each (re)connection opens a new Engine.IO socket: show its transport and its upgrade.
manager.on("open", () => {
  const engine = manager.engine;
  ui.transport.textContent = engine.transport.name;
  engine.on("upgrading", (transport) => { ui.transport.textContent = `${engine.transport.name} → ${transport.name}…`; });
  engine.on("upgrade", (transport) => { ui.transport.textContent = `${transport.name} (upgraded from polling)`; });
  engine.on("upgradeError", () => { ui.transport.textContent = `${engine.transport.name} (upgrade failed)`; });
});

// -- the message list ------------------------------------------------------------------------
function clock(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function entry(kind, nick, at) {
  const item = document.createElement("li");
  item.className = kind;
  item.innerHTML = '<span class="who"></span> <span class="body"></span> <span class="meta"><time></time> <span class="ack"></span></span>';
  item.querySelector(".who").textContent = nick;
  item.querySelector("time").textContent = clock(at);
  ui.messages.append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}

function notice(text, at = new Date().toISOString()) {
  entry("notice", "", at).querySelector(".body").textContent = text;
}

function attachFile(item, name, type, data, size) {
  const body = item.querySelector(".body");
  const inline = INLINE_TYPES.includes(type);
  const url = URL.createObjectURL(new Blob([data], { type: inline ? type : "application/octet-stream" }));
  if (inline) {
    const image = document.createElement("img");
    image.src = url;
    image.alt = name;
    body.append(image);
  }
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.textContent = `${name} (${(size / 1024).toFixed(1)} KiB)`;
  body.append(link);
}

// Emit with an ack and show the outcome on the sender's own line.
async function deliver(item, event, payload) {
  const ack = item.querySelector(".ack");
  ack.textContent = "sending…";
  try {
    const reply = await socket.timeout(10000).emitWithAck(event, payload);
    if (reply.error) throw new Error(reply.error);
    item.dataset.id = reply.id;
    item.classList.add("delivered");
    ack.textContent = "delivered ✓";
  } catch (error) {
    item.classList.add("failed");
    ack.textContent = `not delivered ✗ ${error.message === "operation has timed out" ? "(no answer)" : error.message}`;
  }
}

// -- who I am and where --------------------------------------------------------------------
function showMe() {
  ui.nick.value = me.nick;
  ui.room.value = me.room;
  ui.whoami.textContent = `You are ${me.nick} in #${me.room}.`;
}

socket.on("welcome", (info) => {
  Object.assign(me, info);
  showMe();
});

$("nick-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reply = await socket.timeout(5000).emitWithAck("nick", ui.nick.value).catch(() => ({ error: "no answer" }));
  if (reply.error) return notice(`Nickname not changed: ${reply.error}`);
  me.nick = reply.nick;
  showMe();
});

$("room-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reply = await socket.timeout(5000).emitWithAck("join", ui.room.value).catch(() => ({ error: "no answer" }));
  if (reply.error) return notice(`Room not changed: ${reply.error}`);
  if (reply.room !== me.room) {
    me.room = reply.room;
    typers.clear();
    showTyping();
    notice(`You joined #${me.room}.`);
  }
  showMe();
});

// -- chatting --------------------------------------------------------------------------------
$("compose").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!text.trim()) return;
  ui.text.value = "";
  stopTyping();
  const item = entry("mine", me.nick, new Date().toISOString());
  item.querySelector(".body").textContent = text;
  deliver(item, "message", text);
});

socket.on("message", (message) => {
  entry("theirs", message.nick, message.at).querySelector(".body").textContent = message.text;
});
socket.on("notice", (message) => notice(message.text, message.at));

ui.file.addEventListener("change", async () => {
  const file = ui.file.files[0];
  ui.file.value = ""; // so choosing the same file again sends it again
  if (!file) return;
  const item = entry("mine", me.nick, new Date().toISOString());
  attachFile(item, file.name, file.type, file, file.size);
  if (file.size > me.maxFileBytes) {
    item.classList.add("failed");
    item.querySelector(".ack").textContent = `not sent ✗ larger than ${me.maxFileBytes / 1024} KiB`;
    return;
  }
  deliver(item, "file", { name: file.name, type: file.type, data: await file.arrayBuffer() });
});

socket.on("file", (file) => {
  attachFile(entry("theirs", file.nick, file.at), file.name, file.type, file.data, file.size);
});

// -- typing indicator ------------------------------------------------------------------------
// Sent only while connected: socket.io-client would buffer it, and a stale hint is worse than none.
// (Not socket.volatile, which also drops a packet while the polling transport is busy writing.)
let typingSent = 0;
let typingIdle = null;
function sendTyping(typing) {
  if (socket.connected) socket.emit("typing", typing);
}
ui.text.addEventListener("input", () => {
  if (Date.now() - typingSent > 3000) { // say it again now and then: receivers forget it after 6 s
    sendTyping(true);
    typingSent = Date.now();
  }
  clearTimeout(typingIdle);
  typingIdle = setTimeout(stopTyping, 2000);
});
function stopTyping() {
  clearTimeout(typingIdle);
  if (typingSent) sendTyping(false);
  typingSent = 0;
}

const typers = new Map(); // socket id -> { nick, expiry timer }, for others in my room
socket.on("typing", ({ id, nick, typing }) => {
  clearTimeout(typers.get(id)?.timer);
  typers.delete(id);
  if (typing) typers.set(id, { nick, timer: setTimeout(() => { typers.delete(id); showTyping(); }, 6000) });
  showTyping();
});
function showTyping() {
  const nicks = [...typers.values()].map((typer) => typer.nick);
  ui.typing.textContent = nicks.length ? `${nicks.join(", ")} ${nicks.length === 1 ? "is" : "are"} typing…` : "";
}
