// Drives the official engine.io-client against a realtime server whose handler
// echoes every message, and reports what the client observed as one JSON line.
//
// usage: node eio_stream.mjs URL '{"transport":"polling|websocket|upgrade","count":1000,"binaryEvery":10}'
// Other options: window (messages in flight), delay (ms between sends), timeout (ms).
import { Socket } from "engine.io-client";

const [url, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson ?? "{}");
const count = options.count ?? 1000;
const binaryEvery = options.binaryEvery ?? 0;
const window = options.window ?? 20;

const transports = {
  polling: { transports: ["polling"], upgrade: false },
  websocket: { transports: ["websocket"] },
  upgrade: { transports: ["polling", "websocket"], upgrade: true },
}[options.transport];

const report = { handshake: null, openTransport: null, finalTransport: null, received: [], upgradedAfterSent: null };
const watchdog = setTimeout(() => finish("timeout"), options.timeout ?? 20000);

function message(i) {
  if (binaryEvery && i % binaryEvery === binaryEvery - 1) {
    return Uint8Array.from([i % 256, 0, 255, (i >> 8) % 256]);
  }
  return `m${i} ✓ é`;
}

function describe(data) {
  if (typeof data === "string") return `t:${data}`;
  return `b:${Buffer.from(data).toString("base64")}`;
}

let finished = false;
function finish(error) {
  if (finished) return;
  finished = true;
  clearTimeout(watchdog);
  report.finalTransport = socket.transport?.name ?? null;
  report.error = error ?? null;
  socket.close();
  console.log(JSON.stringify(report));
  process.exit(0);
}

const socket = new Socket(url, { path: options.path ?? "/engine.io/", ...transports });
let sent = 0;

function pump() {
  while (sent < count && sent - report.received.length < window) {
    socket.send(message(sent));
    sent += 1;
  }
}

socket.on("handshake", (data) => { report.handshake = data; });
socket.on("open", () => {
  report.openTransport = socket.transport.name;
  pump();
});
socket.on("upgrade", () => { report.upgradedAfterSent = sent; });
socket.on("message", (data) => {
  report.received.push(describe(data));
  if (report.received.length === count) {
    // in upgrade mode, wait for the upgrade if the stream outran it
    if (options.transport !== "upgrade" || report.upgradedAfterSent !== null) finish();
    else socket.on("upgrade", () => finish());
    return;
  }
  if (options.delay) setTimeout(pump, options.delay);
  else pump();
});
socket.on("close", (reason) => finish(`closed: ${reason}`));
