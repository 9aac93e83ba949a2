// A socket.io-client@4 process driven from Python over stdin/stdout, one JSON object per line.
// A socket opened with {"client": 2} is socket.io-client@2 instead (Engine.IO v3, Socket.IO v4):
// the same commands and the same stream, where v2 has no onAny or timeout() of its own.
//
// Python sends commands {"id": N, "cmd": ..., ...}; the agent answers {"id": N, "result": ...}
// or {"id": N, "error": "..."}. Everything a socket observes is streamed as
// {"socket": NAME, "event": ..., "args": [...]}. Bytes travel as {"$bin": "<base64>"}.
import { io } from "socket.io-client";
import io2 from "socket.io-client-v2";
import msgpackParser from "socket.io-msgpack-parser";
import { createInterface } from "node:readline";

const sockets = new Map();

function out(message) {
  process.stdout.write(JSON.stringify(message, encode) + "\n");
}

function encode(key, value) {
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("base64") };
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  }
  if (value && value.type === "Buffer" && Array.isArray(value.data)) {
    return { $bin: Buffer.from(value.data).toString("base64") };
  }
  return value;
}

function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    if (typeof value.$bin === "string" && Object.keys(value).length === 1) return Buffer.from(value.$bin, "base64");
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
  }
  return value;
}

// Options that are code, not JSON: {"parser": "msgpack"} is npm's socket.io-msgpack-parser.
const PARSERS = { msgpack: msgpackParser };

function open(name, url, options) {
  if (typeof options.parser === "string") options = { ...options, parser: PARSERS[options.parser] };
  const { client, ...rest } = options;
  const socket = (client === 2 ? io2 : io)(url, { forceNew: true, reconnection: false, ...rest });
  sockets.set(name, socket);
  const emitEvent = (event, args) => out({ socket: name, event, args });
  socket.on("connect", () => emitEvent("connect", [socket.id, socket.io.engine.transport.name]));
  socket.on("connect_error", (err) => emitEvent("connect_error", [err.message, err.data ?? null]));
  socket.on("disconnect", (reason) => emitEvent("disconnect", [reason]));
  socket.io.engine?.on?.("upgrade", (t) => emitEvent("upgrade", [t.name]));
  socket.io.on("open", () => socket.io.engine.on("upgrade", (t) => emitEvent("upgrade", [t.name])));
  const any = (event, ...args) => {
    if (typeof args[args.length - 1] === "function") args.pop();
    emitEvent("event", [event, ...args]);
  };
  if (client === 2) {
    // a namespace refused: v2 emits "error" with the server's payload (a plain message)
    socket.on("error", (data) => emitEvent("connect_error", [typeof data === "string" ? data : data?.message, data]));
    socket.io.on("connect_error", (err) => emitEvent("connect_error", [String(err?.message ?? err), null]));
    socket.io.on("ping", () => emitEvent("ping", []));
    socket.io.on("pong", (ms) => emitEvent("pong", [ms]));
    const onevent = socket.onevent;
    socket.onevent = function (packet) {
      any(...(packet.data ?? []));
      onevent.call(this, packet);
    };
  } else {
    socket.onAny(any);
  }
  return socket;
}

// socket.timeout(ms).emit(...) where the client has it; v2 gets the same by hand
function emitWithAck(socket, event, args, timeout) {
  return new Promise((resolve, reject) => {
    if (typeof socket.timeout === "function") {
      socket.timeout(timeout).emit(event, ...args, (err, ...answer) => (err ? reject(err) : resolve(answer)));
      return;
    }
    const timer = setTimeout(() => reject(new Error("operation has timed out")), timeout);
    socket.emit(event, ...args, (...answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

async function handle(command) {
  const socket = sockets.get(command.socket);
  switch (command.cmd) {
    case "open":
      open(command.socket, command.url, command.options ?? {});
      return null;
    case "emit":
      socket.emit(command.event, ...decode(command.args ?? []));
      return null;
    case "emitWithAck":
      // every argument of the acknowledgement, as an array
      return await emitWithAck(socket, command.event, decode(command.args ?? []), command.timeout ?? 5000);
    case "reply":
      // answer the server's emit_with_ack for this event with fixed arguments
      socket.on(command.event, (...args) => {
        const callback = args.pop();
        if (typeof callback === "function") callback(...decode(command.with ?? []));
      });
      return null;
    case "silent":
      // receive this event but never call its ack callback
      socket.on(command.event, () => {});
      return null;
    case "disconnect":
      socket.disconnect();
      return null;
    case "break":
      // lose the transport without a goodbye, as a network blip does: the manager reconnects (if allowed)
      socket.io.engine.close();
      return null;
    case "state":
      return {
        id: socket.id ?? null,
        sid: socket.io.engine?.id ?? null,
        connected: socket.connected,
        recovered: socket.recovered ?? null,
        transport: socket.io.engine?.transport?.name ?? null,
        // the WebSocket extensions the server agreed to (ws's own WebSocket, under engine.io-client)
        extensions: socket.io.engine?.transport?.ws?.extensions ?? null,
      };
    case "reset":
      // the next test's clean slate (tests/clients/node.py, SharedNodeAgent): every socket silenced first,
      // so nothing it says after this answer can reach the next test, then disconnected and forgotten
      for (const s of sockets.values()) {
        s.offAny?.();
        s.removeAllListeners();
        s.io.removeAllListeners();
        s.io.engine?.removeAllListeners?.("upgrade");
        s.disconnect();
      }
      sockets.clear();
      return null;
    case "exit":
      for (const s of sockets.values()) s.disconnect();
      setImmediate(() => process.exit(0));
      return null;
    default:
      throw new Error(`unknown command ${command.cmd}`);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const command = JSON.parse(line);
  try {
    out({ id: command.id, result: (await handle(command)) ?? null });
  } catch (err) {
    out({ id: command.id, error: String(err?.message ?? err) });
  }
});
lines.on("close", () => process.exit(0));
