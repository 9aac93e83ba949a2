// Two people chat on the demo page in Debian's Chromium, driven by playwright-core, and the
// script reports what each page showed as one JSON line (tests/e2e/test_browser.py asserts on it).
//
// usage: node browser_chat.mjs URL '{"png": BASE64, "screenshots": {"a": PATH, "b": PATH}}'
// Other options: chromium (executable path), timeout (ms for each wait).
import { chromium } from "playwright-core";

const [url, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson ?? "{}");
const TIMEOUT = options.timeout ?? 10000;
const ROOM = "django";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-quic", "--disable-component-update", "--disable-sync",
];

const report = { error: null, pageErrors: [], screenshots: {} };
const pages = {};

// A page's element (by CSS selector) once it shows `text` (a string it contains, or a RegExp).
function shown(page, selector, text) {
  const locator = page.locator(selector);
  return text === undefined ? locator.first() : locator.filter({ hasText: text }).first();
}

async function waitText(page, selector, text) {
  const locator = shown(page, selector, text);
  await locator.waitFor({ timeout: TIMEOUT });
  return locator.innerText();
}

async function open(browser, key, nick) {
  // One context each: two separate browser profiles, as two people would be.
  const context = await browser.newContext({ viewport: { width: 800, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (error) => report.pageErrors.push(`${key}: ${error.message}`));
  pages[key] = page;
  await page.goto(`${url}/`);
  await waitText(page, '#status[data-state="connected"]');
  report[key] = { title: await page.title(), transport: await waitText(page, "#transport", "(upgraded") };
  await page.fill("#nick", nick);
  await page.click("#nick-form button");
  await waitText(page, "#whoami", `You are ${nick} in #lobby.`);
  return page;
}

async function joinRoom(page, nick) {
  await page.fill("#room", ROOM);
  await page.click("#room-form button");
  return waitText(page, "#whoami", `You are ${nick} in #${ROOM}.`);
}

async function chat(a, b) {
  report.a.whoami = await joinRoom(a, "alice");
  report.b.whoami = await joinRoom(b, "bob");
  report.a.sawJoin = await waitText(a, "#messages .notice", `bob joined #${ROOM}`);

  await a.locator("#text").pressSequentially("hello from alice", { delay: 15 });
  report.b.typing = await waitText(b, "#typing", "alice is typing");
  await a.press("#text", "Enter");
  report.b.message = await waitText(b, "#messages .theirs", "hello from alice");
  report.a.ack = await shown(a, "#messages .mine.delivered", "hello from alice").locator(".ack").innerText();
  await b.waitForFunction(() => document.getElementById("typing").textContent === "");
  report.b.typingAfterSend = await b.locator("#typing").textContent();
}

async function sendPicture(a, b) {
  const buffer = Buffer.from(options.png, "base64");
  await a.setInputFiles("#file", { name: "checkers.png", mimeType: "image/png", buffer });
  const image = shown(b, "#messages .theirs img");
  await image.waitFor();
  await b.waitForFunction((img) => img.complete && img.naturalWidth > 0, await image.elementHandle());
  report.b.image = await image.evaluate(async (img) => {
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    return {
      src: img.src, alt: img.alt, width: img.naturalWidth, height: img.naturalHeight,
      base64: btoa(String.fromCharCode(...bytes)), link: img.parentElement.querySelector("a").textContent,
    };
  });
  report.a.fileAck = await shown(a, "#messages .mine.delivered", "checkers.png").locator(".ack").innerText();
  // Past the page's own size check, straight to the server: it must refuse with an ack error.
  report.a.oversizeAck = await a.evaluate(() =>
    socket.timeout(5000).emitWithAck("file", { name: "big.bin", type: "", data: new ArrayBuffer(600 * 1024) }));
}

async function reconnect(a, b) {
  // Offline, A's WebSocket stops carrying pings: the client notices within the 400 + 300 ms
  // heartbeat of tests/settings.py, and the Manager keeps retrying until it is back online.
  await a.context().setOffline(true);
  report.a.disconnected = await waitText(a, "#status", "disconnected");
  report.a.reconnecting = await waitText(a, "#status", "reconnecting (attempt 2)");
  report.b.sawLeave = await waitText(b, "#messages .notice", "alice disconnected");
  await a.context().setOffline(false);
  await waitText(a, '#status[data-state="connected"]');
  report.a.transportAfterReconnect = await waitText(a, "#transport", "(upgraded");
  report.a.whoamiAfterReconnect = await a.locator("#whoami").innerText();
  report.b.sawRejoin = await waitText(b, "#messages .notice", `alice joined #${ROOM}`); // B came after her first join
  await a.fill("#text", "back again");
  await a.press("#text", "Enter");
  report.b.afterReconnect = await waitText(b, "#messages .theirs", "back again");
  report.b.files = await b.locator("#messages .theirs a[download]").allTextContents();
}

async function screenshots() {
  // A starts another message, so B's shot shows the typing indicator too.
  await pages.a.locator("#text").pressSequentially("one more thing", { delay: 15 });
  await waitText(pages.b, "#typing", "alice is typing");
  for (const [key, page] of Object.entries(pages)) {
    await page.screenshot({ path: options.screenshots[key] });
    report.screenshots[key] = options.screenshots[key];
  }
}

const browser = await chromium.launch({
  executablePath: options.chromium ?? process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true, args: ARGS, timeout: 30000,
});
try {
  const [a, b] = await Promise.all([open(browser, "a", "alice"), open(browser, "b", "bob")]);
  await chat(a, b);
  await sendPicture(a, b);
  await reconnect(a, b);
  await screenshots();
} catch (error) {
  report.error = String(error.stack ?? error);
  for (const [key, page] of Object.entries(pages)) {
    const path = options.screenshots?.[key]?.replace(/\.png$/, "-failed.png");
    if (path) await page.screenshot({ path }).catch(() => {});
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
