// Connection state recovery in Debian's Chromium (playwright-core): the page's socket.io-client@4 loses
// its WebSocket (or the process holding it is killed), a Node client emits to it while it is away, and it
// reconnects through the round-robin proxy to the other process. One JSON line reports what the page saw
// (tests/e2e/test_recovery.py asserts on it).
//
// usage: node browser_recovery.mjs PROXY_URL '{"kill": false, "pids": [..]}'
import { chromium } from "playwright-core";
import { io } from "socket.io-client";

const [url, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson ?? "{}");
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"];
const report = { error: null, pageErrors: [] };

function ask(socket, event, ...args) {
  return socket.timeout(5000).emitWithAck(event, ...args);
}

async function onOtherProcess(key) {
  for (let attempt = 0; attempt < 4; attempt++) {
    const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
    await new Promise((resolve, reject) => { socket.once("connect", resolve); socket.once("connect_error", reject); });
    if ((await ask(socket, "recovery")).process !== key) return socket;
    socket.disconnect();
  }
  throw new Error("every connection went to one process");
}

async function aimAwayFrom(key) {
  for (let attempt = 0; attempt < 4; attempt++) {
    const text = await (await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).text();
    if (text.startsWith(`0{"sid":"${key}`)) return;
  }
  throw new Error("no handshake reached the process holding the page");
}

const browser = await chromium.launch({ executablePath: options.chromium ?? "/usr/bin/chromium", args: ARGS });
let other;
try {
  const page = await browser.newPage();
  page.on("pageerror", (error) => report.pageErrors.push(error.message));
  page.setDefaultTimeout(15000);
  await page.goto(`${url}/`);
  await page.waitForFunction(() => typeof window.io === "function");
  const before = await page.evaluate(async () => {
    window.seen = [];
    const socket = (window.recovering = window.io(location.origin, {
      transports: ["websocket"], reconnectionDelay: 1000, reconnectionDelayMax: 1000, randomizationFactor: 0,
    }));
    socket.onAny((event, ...args) => window.seen.push([event, ...args]));
    socket.on("connect", () => window.seen.push(["(connect)", socket.id, socket.recovered]));
    socket.on("disconnect", (reason) => window.seen.push(["(disconnect)", reason]));
    await new Promise((resolve) => socket.once("connect", resolve));
    await new Promise((resolve) => socket.once("welcome", resolve));  // an event, so the socket holds an offset
    const ask = (...args) => socket.timeout(5000).emitWithAck(...args);
    await ask("remember", "kept");
    await ask("join", "r");
    return { id: socket.id, ...(await ask("recovery")) };
  });
  report.before = before;
  other = await onOtherProcess(before.process);
  if (options.kill) process.kill(before.pid, "SIGKILL");
  else await page.evaluate(() => window.recovering.io.engine.close());
  await page.waitForFunction(() => window.seen.some(([name]) => name === "(disconnect)"));
  for (const spec of [
    { to: ["r"], event: "news", args: [1] },
    { to: [before.id], event: "direct", args: ["two"] },
    { to: ["r"], event: "news", args: [3] },
  ]) await ask(other, "broadcast", spec);
  if (!options.kill) await aimAwayFrom(before.process);
  await page.waitForFunction(() => window.seen.filter(([name]) => name === "(connect)").length === 2, null, { timeout: 10000 });
  report.after = await page.evaluate(async () => ({
    recovered: window.recovering.recovered,
    id: window.recovering.id,
    ...(await window.recovering.timeout(5000).emitWithAck("recovery")),
  }));
  await ask(other, "broadcast", { to: ["r"], event: "news", args: [4] });
  await page.waitForFunction(() => window.seen.filter(([name, n]) => name === "news" && n === 4).length === 1);
  report.seen = await page.evaluate(() => window.seen);
} catch (error) {
  report.error = String(error?.stack ?? error);
} finally {
  other?.disconnect();
  await browser.close();
}
console.log(JSON.stringify(report));
