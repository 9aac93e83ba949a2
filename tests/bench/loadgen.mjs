// The benchmark's load generator: raw Engine.IO v4 / Socket.IO v5 over `ws` (no client library
// overhead), so the server, not the generator, is what gets measured. It reports its own CPU use.
//
// usage: node loadgen.mjs '{"base":"127.0.0.1:8000","workload":"echo","clients":10,"seconds":5}'
// workloads: connect, handshake, echo, broadcast, idle. Prints one JSON line.
import http from "node:http";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import WebSocket from "ws";

const config = JSON.parse(process.argv[2]);
const bases = config.bases ?? [config.base];
const wsUrl = (base) => `ws://${base}/socket.io/?EIO=4&transport=websocket`;
setTimeout(() => { console.log(JSON.stringify({ error: "generator timeout" })); process.exit(1); }, (config.seconds + 180) * 1000);

class Histogram {
  // 0.02 ms buckets up to 30 s: exact enough for p50/p99 without storing every sample
  constructor() { this.width = 0.02; this.counts = new Uint32Array(1_500_000); this.n = 0; }
  add(ms) { this.counts[Math.min(this.counts.length - 1, Math.max(0, Math.floor(ms / this.width)))]++; this.n++; }
  quantile(q) {
    if (!this.n) return null;
    let seen = 0; const target = q * this.n;
    for (let i = 0; i < this.counts.length; i++) { seen += this.counts[i]; if (seen >= target) return (i + 0.5) * this.width; }
    return null;
  }
}

// One Socket.IO client on a raw WebSocket: handshake, "40", pings answered, packets to onPacket.
function connect(onPacket = () => {}, base = bases[0]) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(base), { perMessageDeflate: false });
    const client = { ws, ack: 0, pending: new Map(), onPacket };
    ws.on("error", reject);
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? null : data.toString();
      if (text === null) return;
      if (text === "2") { ws.send("3"); return; }
      if (text.startsWith("0")) { ws.send("40"); return; }
      if (text.startsWith("40")) { resolve(client); return; }
      if (text.startsWith("43")) {
        let i = 2; while (text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
        const id = Number(text.slice(2, i)); const done = client.pending.get(id);
        if (done) { client.pending.delete(id); done(text.slice(i)); }
        return;
      }
      client.onPacket(text);
    });
  });
}

function call(client, event, ...args) {
  const id = client.ack++;
  return new Promise((resolve) => {
    client.pending.set(id, resolve);
    client.ws.send(`42${id}` + JSON.stringify([event, ...args]));
  });
}

async function connectMany(n, onPacket, concurrency = 100) {
  // spread over every base (server process) in turn
  const clients = []; let next = 0;
  async function worker() { while (next < n) { const i = next++; clients.push(await connect(onPacket, bases[i % bases.length])); } }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return clients;
}

function measure(seconds, body) {
  // run body(stopAt) and report how much CPU this generator used meanwhile; the phase lines let the
  // runner read the server's CPU time at exactly the start and the end of what is measured
  console.log(JSON.stringify({ phase: "start" }));
  const cpu0 = process.cpuUsage(); const t0 = performance.now();
  return body(t0 + seconds * 1000).then((result) => {
    const elapsed = (performance.now() - t0) / 1000; const cpu = process.cpuUsage(cpu0);
    console.log(JSON.stringify({ phase: "end" }));
    return { ...result, elapsed, generator_cpu: (cpu.user + cpu.system) / 1e6 / elapsed };
  });
}

const workloads = {
  async connect() {
    return measure(config.seconds, async (stopAt) => {
      let count = 0;
      async function worker() {
        while (performance.now() < stopAt) { const c = await connect(); c.ws.terminate(); count++; }
      }
      await Promise.all(Array.from({ length: config.clients }, worker));
      return { count };
    }).then((r) => ({ ...r, rate: r.count / r.elapsed }));
  },

  async handshake() {
    const agent = new http.Agent({ keepAlive: true, maxSockets: config.clients });
    const [host, port] = bases[0].split(":");
    const get = () => new Promise((resolve, reject) => {
      http.get({ host, port, agent, path: "/socket.io/?EIO=4&transport=polling" }, (res) => {
        res.resume(); res.on("end", () => resolve(res.statusCode));
      }).on("error", reject);
    });
    return measure(config.seconds, async (stopAt) => {
      let count = 0;
      async function worker() { while (performance.now() < stopAt) { if ((await get()) === 200) count++; } }
      await Promise.all(Array.from({ length: config.clients }, worker));
      return { count };
    }).then((r) => { agent.destroy(); return { ...r, rate: r.count / r.elapsed }; });
  },

  async echo() {
    const clients = await connectMany(config.clients);
    const histogram = new Histogram(); const payload = "x".repeat(config.size ?? 32);
    for (const c of clients) await call(c, "echo", payload);  // warm up
    const result = await measure(config.seconds, async (stopAt) => {
      let count = 0;
      async function loop(c) {
        while (performance.now() < stopAt) {
          const t = performance.now(); await call(c, "echo", payload, count); histogram.add(performance.now() - t); count++;
        }
      }
      await Promise.all(clients.map(loop));
      return { count };
    });
    for (const c of clients) c.ws.terminate();
    return { ...result, rate: result.count / result.elapsed, p50: histogram.quantile(0.5), p99: histogram.quantile(0.99) };
  },

  async broadcast() {
    const histogram = new Histogram(); let delivered = 0; const got = new Map();
    let wake = null;
    const onTick = (text) => {
      if (!text.startsWith('42["tick"')) return;
      const [, seq, sent] = JSON.parse(text.slice(2));
      histogram.add(performance.now() - sent); delivered++;
      const n = (got.get(seq) ?? 0) + 1; got.set(seq, n);
      if (n === config.clients && wake) wake(seq);
    };
    const receivers = await connectMany(config.clients, onTick);
    await Promise.all(receivers.map((c) => call(c, "join", "bench")));
    const sender = await connect();
    const window = config.window ?? 2;
    const result = await measure(config.seconds, async (stopAt) => {
      let seq = 0; let inFlight = 0; let broadcasts = 0;
      await new Promise((finish) => {
        const fire = () => {
          while (inFlight < window && performance.now() < stopAt) {
            inFlight++; sender.ws.send("42" + JSON.stringify(["fanout", "bench", seq++, performance.now()]));
          }
          if (inFlight === 0) finish();
        };
        wake = (s) => { got.delete(s); inFlight--; broadcasts++; fire(); };
        fire();
      });
      return { broadcasts };
    });
    for (const c of [...receivers, sender]) c.ws.terminate();
    return { ...result, delivered, rate: delivered / result.elapsed, p50: histogram.quantile(0.5), p99: histogram.quantile(0.99) };
  },

  async idle() {
    // open the connections, say so, hold them until told on stdin
    const clients = await connectMany(config.clients);
    console.log(JSON.stringify({ ready: clients.length }));
    await new Promise((resolve) => createInterface({ input: process.stdin }).once("line", resolve));
    for (const c of clients) c.ws.terminate();
    return { held: clients.length };
  },
};

const result = await workloads[config.workload]();
console.log(JSON.stringify(result));
process.exit(0);
