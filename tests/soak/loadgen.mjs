// The soak's load: thousands of real socket.io-client@4 sockets in one Node process, driven by
// tests/soak/run.py. Each client does one thing at a time (echo with ack, join, leave, shout to a
// room, reconnect); a scheduler starts operations at fixed rates. Every message sent has an
// expected recipient set, and every recipient's receipt is checked, so "lost" is exact.
//
// usage: node loadgen.mjs '<json config>' — prints JSON lines: {"event": "ready" | "warm" |
// "middle" | "end" | "progress" | "result", ...}. Exits 0 whatever it measured; run.py judges.
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const config = JSON.parse(process.argv[2]);
const ACK_MS = config.ackTimeoutMs ?? 10_000;
const DELIVERY_MS = config.deliveryTimeoutMs ?? 10_000;
const ROOMS = Array.from({ length: config.rooms }, (_, i) => `soak-${i}`);

const counts = {
  connects: 0, connectErrors: 0, unexpectedDisconnects: 0, reconnects: 0,
  echoSent: 0, echoOk: 0, echoWrong: 0, echoTimeout: 0,
  joins: 0, leaves: 0, roomAckTimeouts: 0, roomAckWrong: 0,
  shouts: 0, shoutAckTimeouts: 0, expectedDeliveries: 0, delivered: 0, lost: 0,
  duplicates: 0, misdelivered: 0, late: 0, skipped: 0, pollingDisconnects: 0, pollingConnectErrors: 0, droppedAcks: 0,
};
const errors = []; // the first few of each kind, with detail
const errorKinds = new Map();
// round-trip and delivery times (ms): a stalled event loop shows here before it shows as a timeout
const latency = { echo: [], delivery: [] };
function quantiles(values) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const at = (q) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
  return { p50: at(0.5), p99: at(0.99), max: Math.round(sorted[sorted.length - 1]), n: sorted.length };
}
function error(kind, detail) {
  const seen = errorKinds.get(kind) ?? 0;
  errorKinds.set(kind, seen + 1);
  if (seen < 10) errors.push({ kind, detail, t: Math.round(elapsed()) });
}
const out = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const started = Date.now();
const elapsed = () => (Date.now() - started) / 1000;

// -- rooms and messages in flight ------------------------------------------------------------
const rooms = new Map(ROOMS.map((name) => [name, { members: new Set(), changing: new Set(), inflight: new Set() }]));
// id -> {room, expected, maybe, got, remaining, sentAt, open}; kept a minute after it closes, so that
// a receipt after that can still be told apart: duplicate, late, or to a client that was not a member
const messages = new Map();
let openMessages = 0;
let nextMessage = 0;

function finish(message) {
  message.open = false;
  message.closedAt = Date.now();
  openMessages--;
  rooms.get(message.room).inflight.delete(message.id);
}

function receive(client, room, id) {
  const message = messages.get(id);
  if (message === undefined) { counts.misdelivered++; error("unknown shout", { client: client.index, id }); return; }
  if (message.got.has(client.index)) { counts.duplicates++; error("duplicate shout", { client: client.index, id }); return; }
  message.got.add(client.index);
  if (message.expected.has(client.index)) {
    if (!message.open) { counts.late++; return; } // already counted lost
    counts.delivered++;
    latency.delivery.push(Date.now() - message.sentAt);
    if (--message.remaining === 0) finish(message);
  } else if (!message.maybe.has(client.index)) {
    counts.misdelivered++;
    error("shout to a non-member", { client: client.index, room, id });
  }
}

setInterval(() => {
  // expected recipients that have not heard a message in DELIVERY_MS lost it
  const now = Date.now();
  for (const message of messages.values()) {
    if (message.open && now - message.sentAt >= DELIVERY_MS) {
      const missing = [...message.expected].filter((c) => !message.got.has(c));
      counts.lost += missing.length;
      error("shout lost", { id: message.id, room: message.room, missing: missing.slice(0, 10), of: message.expected.size });
      finish(message);
    } else if (!message.open && now - message.closedAt > 60_000) {
      messages.delete(message.id);
    }
  }
}, 1000).unref();

// -- clients ---------------------------------------------------------------------------------
const clients = [];

// Polling through the proxy without sticky sessions is forwarded between the processes through the
// channel layer: while Redis is down those clients are dropped, and counted apart (run.py allows it then only).
const DROPPED = Symbol("dropped");
const isPolling = (index) => config.pollingShare > 0 && index % Math.round(1 / config.pollingShare) === 0;

function target(index) {
  // most over WebSocket straight to a server; a share over polling through the round-robin proxy
  if (isPolling(index)) {
    return { url: config.proxy, options: { transports: ["polling"], upgrade: false } };
  }
  return { url: config.bases[index % config.bases.length], options: { transports: ["websocket"] } };
}

function open(client) {
  const { url, options } = target(client.index);
  const socket = io(url, { forceNew: true, reconnection: false, timeout: 20_000, ...options });
  client.socket = socket;
  client.leaving = false;
  client.dropped = false;
  return new Promise((resolve) => {
    // socket.io-client times out the transport's opening, not the namespace CONNECT: this does
    let settled = false;
    const settle = (ok, why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!ok) {
        counts[isPolling(client.index) ? "pollingConnectErrors" : "connectErrors"]++;
        error("connect_error", { client: client.index, message: why, t: Math.round(elapsed()) });
      }
      resolve(ok);
    };
    const timer = setTimeout(() => settle(false, `no connect in ${ACK_MS * 3} ms`), ACK_MS * 3);
    socket.on("connect", () => { counts.connects++; client.connected = true; settle(true); });
    socket.on("connect_error", (err) => settle(false, err.message));
    socket.on("disconnect", (reason) => {
      settle(false, `disconnected before connecting: ${reason}`);
      client.connected = false;
      if (!client.leaving) {
        const polling = isPolling(client.index);
        if (polling) counts.pollingDisconnects++;
        else counts.unexpectedDisconnects++;
        error(polling ? "polling disconnect" : "disconnect", { client: client.index, reason, t: Math.round(elapsed()) });
        client.dropped = polling; // its acks in flight will not come: counted with its drop, not as timeouts
        for (const name of client.rooms) { notOwed(client, name); rooms.get(name).members.delete(client.index); }
        client.rooms.clear();
      }
    });
    socket.on("shout", (room, id) => receive(client, room, id));
  });
}

function ack(client, event, ...args) {
  // resolves with the ack's arguments, or null after ACK_MS; a polling client dropped meanwhile (see
  // isPolling) resolves with DROPPED, which its drop has counted already
  return new Promise((resolve) => {
    client.socket.timeout(ACK_MS).emit(event, ...args, (err, ...answer) => resolve(err ? (client.dropped ? DROPPED : null) : answer));
  });
}

async function join(client, name) {
  const room = rooms.get(name);
  room.changing.add(client.index);
  // a join is not ordered with broadcasts sent over other connections: what is in flight may reach it
  for (const id of room.inflight) messages.get(id)?.maybe.add(client.index);
  const answer = await ack(client, "join", name);
  room.changing.delete(client.index);
  if (answer === DROPPED) { counts.droppedAcks++; return; }
  if (answer === null) { counts.roomAckTimeouts++; error("join ack timeout", { client: client.index, name }); return; }
  if (answer[0] !== "joined") { counts.roomAckWrong++; error("join ack", { answer }); return; }
  counts.joins++;
  if (client.connected) { room.members.add(client.index); client.rooms.add(name); }
}

function notOwed(client, name) {
  // what is in flight to ``name`` is no longer owed to ``client`` (it left the room, or was dropped)
  for (const id of rooms.get(name).inflight) {
    const message = messages.get(id);
    if (message?.open && message.expected.delete(client.index)) {
      message.maybe.add(client.index);
      if (!message.got.has(client.index)) {
        counts.expectedDeliveries--;
        if (--message.remaining === 0) finish(message);
      }
    }
  }
}

async function leave(client, name) {
  // no longer expected from now on; may still get what is in flight until the ack (a broadcast
  // delayed by a Redis outage may arrive after the leave: it is not owed any more)
  const room = rooms.get(name);
  notOwed(client, name);
  room.members.delete(client.index);
  client.rooms.delete(name);
  room.changing.add(client.index);
  const answer = await ack(client, "leave", name);
  room.changing.delete(client.index);
  if (answer === DROPPED) { counts.droppedAcks++; return; }
  if (answer === null) { counts.roomAckTimeouts++; error("leave ack timeout", { client: client.index, name }); return; }
  if (answer[0] !== "left") { counts.roomAckWrong++; error("leave ack", { answer }); return; }
  counts.leaves++;
}

async function echo(client) {
  const seq = counts.echoSent++;
  const payload = `echo ${seq} é✓ ` + "x".repeat(seq % 100);
  const sentAt = performance.now();
  const answer = await ack(client, "echo", seq, payload);
  if (answer === DROPPED) { counts.droppedAcks++; return; }
  if (answer !== null) latency.echo.push(performance.now() - sentAt);
  if (answer === null) { counts.echoTimeout++; error("echo ack timeout", { client: client.index, seq }); }
  else if (answer[0] !== seq || answer[1] !== payload) { counts.echoWrong++; error("echo answer", { seq, answer }); }
  else counts.echoOk++;
}

async function shout(client) {
  const name = ROOMS[Math.floor(Math.random() * ROOMS.length)];
  const room = rooms.get(name);
  const id = nextMessage++;
  const expected = new Set([...room.members].filter((c) => clients[c].connected && !room.changing.has(c)));
  const message = {
    id, room: name, expected, maybe: new Set(room.changing), got: new Set(), remaining: expected.size,
    sentAt: Date.now(), open: true,
  };
  counts.shouts++;
  counts.expectedDeliveries += expected.size;
  messages.set(id, message);
  openMessages++;
  room.inflight.add(id);
  if (expected.size === 0) finish(message);
  const answer = await ack(client, "shout", name, id);
  if (answer === DROPPED) { counts.droppedAcks++; return; }
  if (answer === null) { counts.shoutAckTimeouts++; error("shout ack timeout", { client: client.index, id }); }
}

async function reconnect(client) {
  // only when nothing in flight expects it, so that leaving cannot lose a message
  if ([...client.rooms].some((name) => rooms.get(name).inflight.size > 0)) { counts.skipped++; return; }
  const had = [...client.rooms];
  for (const name of had) rooms.get(name).members.delete(client.index);
  client.rooms.clear();
  client.leaving = true;
  client.socket.disconnect();
  client.socket.removeAllListeners();
  if (!(await open(client))) return;
  counts.reconnects++;
  for (const name of had) await join(client, name);
}

// -- the schedule ----------------------------------------------------------------------------
const operations = {
  echo: (client) => echo(client),
  shout: (client) => shout(client),
  // joins and leaves keep each client near roomsPerClient rooms
  join: (client) => {
    const free = ROOMS.filter((name) => !client.rooms.has(name));
    if (client.rooms.size > config.roomsPerClient || free.length === 0) { counts.skipped++; return Promise.resolve(); }
    return join(client, free[Math.floor(Math.random() * free.length)]);
  },
  leave: (client) => {
    // a room with a message in flight is left later: leaving now could make its delivery ambiguous
    const quiet = [...client.rooms].filter((name) => rooms.get(name).inflight.size === 0);
    if (client.rooms.size < config.roomsPerClient) { counts.skipped++; return Promise.resolve(); }
    if (quiet.length === 0) { counts.skipped++; return Promise.resolve(); }
    return leave(client, quiet[Math.floor(Math.random() * quiet.length)]);
  },
  reconnect: (client) => reconnect(client),
};

// Which clients an operation may pick now: leaving a room (or the server) with a message in flight
// to it could make that message's delivery ambiguous, so such clients wait for a quiet moment.
const quiet = (name) => rooms.get(name).inflight.size === 0;
const applicable = {
  echo: () => true,
  shout: () => true,
  join: (client) => client.rooms.size <= config.roomsPerClient,
  leave: (client) => client.rooms.size >= config.roomsPerClient && [...client.rooms].some(quiet),
  reconnect: (client) => [...client.rooms].every(quiet),
};

function idleClient(kind) {
  for (let tries = 0; tries < 50; tries++) {
    const client = clients[Math.floor(Math.random() * clients.length)];
    if (client.connected && !client.busy && applicable[kind](client)) return client;
  }
  return null;
}

let running = false;
const active = new Set();
function schedule() {
  const credit = Object.fromEntries(Object.keys(config.rates).map((k) => [k, 0]));
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const dt = (now - last) / 1000;
    last = now;
    if (!running) return;
    for (const [kind, rate] of Object.entries(config.rates)) {
      credit[kind] += rate * dt;
      while (credit[kind] >= 1) {
        credit[kind] -= 1;
        const client = idleClient(kind);
        if (client === null) { counts.skipped++; continue; }
        client.busy = true;
        const task = operations[kind](client).finally(() => { client.busy = false; active.delete(task); });
        active.add(task);
      }
    }
  }, 20);
  return timer;
}

async function connectAll() {
  const progress = setInterval(() => out({ event: "connecting", connected: clients.filter((c) => c.connected).length, counts }), 10_000);
  for (let i = 0; i < config.connections; i++) clients.push({ index: i, rooms: new Set(), connected: false, busy: false });
  let next = 0;
  async function worker() {
    while (next < clients.length) {
      const client = clients[next++];
      if (await open(client)) {
        const names = new Set();
        while (names.size < Math.min(config.roomsPerClient, ROOMS.length)) names.add(ROOMS[Math.floor(Math.random() * ROOMS.length)]);
        for (const name of names) await join(client, name);
      }
    }
  }
  await Promise.all(Array.from({ length: config.connectConcurrency }, worker));
  clearInterval(progress);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const t0 = Date.now();
  await connectAll();
  const connected = clients.filter((c) => c.connected).length;
  out({ event: "ready", connected, seconds: (Date.now() - t0) / 1000, counts });
  const timer = schedule();
  running = true;
  const progress = setInterval(() => out({ event: "progress", t: Math.round(elapsed()), connected: clients.filter((c) => c.connected).length, inflight: openMessages, counts }), 10_000);
  await sleep(config.warmup * 1000);
  out({ event: "warm", counts });
  await sleep((config.seconds * 1000) / 2);
  out({ event: "middle", counts });
  await sleep((config.seconds * 1000) / 2);
  out({ event: "end", connected: clients.filter((c) => c.connected).length, counts });
  running = false;
  clearInterval(timer);
  // let what was started finish: acks and deliveries time out on their own within their limits
  const settleBy = Date.now() + ACK_MS + DELIVERY_MS + 5000;
  while ((active.size > 0 || openMessages > 0) && Date.now() < settleBy) await sleep(100);
  clearInterval(progress);
  const stillConnected = clients.filter((c) => c.connected).length;
  out({
    event: "result", connected: stillConnected, unsettled: active.size + openMessages, counts, errors,
    latency: { echo: quantiles(latency.echo), delivery: quantiles(latency.delivery) },
  });
  for (const client of clients) { client.leaving = true; client.socket?.disconnect(); }
  setTimeout(() => process.exit(0), 500);
}

main().catch((err) => { out({ event: "crash", error: String(err?.stack ?? err) }); process.exit(1); });
