// An operator in Debian's Chromium (playwright-core): logs in to the Django admin, looks at the live
// connections, creates a token (its secret shown once), looks at rooms and the dashboard, and checks
// that the logged-in browser's session cookie authenticates a Socket.IO connection.
// Prints one JSON report line; tests/e2e/test_admin_browser.py asserts on it.
//
// usage: node browser_admin.mjs URL '{"username": ..., "password": ..., "socketId": ..., "tokenUser": ID,
//                                     "room": NAME, "screenshots": DIR}'
import { chromium } from "playwright-core";

const [url, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson);
const TIMEOUT = options.timeout ?? 10000;
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-quic", "--disable-component-update", "--disable-sync",
];

const report = { error: null, pageErrors: [], screenshots: [] };

async function shot(page, name) {
  const path = `${options.screenshots}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  report.screenshots.push(path);
}

async function login(page) {
  await page.goto(`${url}/admin/login/?next=/admin/`);
  await page.fill("#id_username", options.username);
  await page.fill("#id_password", options.password);
  await page.click('input[type="submit"]');
  await page.waitForSelector("#site-name");
  report.adminTitle = await page.title();
}

async function connections(page) {
  await page.goto(`${url}/admin/realtime/connection/`);
  await page.click("#toggle-nav-sidebar"); // wider tables in the screenshots (the admin remembers it)
  const row = page.locator("#result_list tr", { hasText: options.socketId });
  await row.waitFor();
  report.connectionRow = {
    namespace: await row.locator(".field-namespace").innerText(),
    user: await row.locator(".field-user_link").innerText(),
    transport: await row.locator(".field-transport").innerText(),
    rooms: await row.locator(".field-room_list").innerText(),
  };
  report.filters = await page.locator("#changelist-filter details > summary").allInnerTexts();
  await shot(page, "admin-connections");
}

async function createToken(page) {
  await page.goto(`${url}/admin/realtime/accesstoken/add/`);
  await page.selectOption("#id_user", String(options.tokenUser));
  await page.fill("#id_name", "browser-made");
  await page.fill("#id_namespaces", "/private");
  await page.click('input[name="_save"]');
  const secret = page.locator("#token-secret");
  await secret.waitFor();
  report.secret = await secret.innerText();
  await shot(page, "admin-token-created");
  await page.goto(`${url}/admin/realtime/accesstoken/`);
  report.tokenListShowsSecret = (await page.content()).includes(report.secret);
  await shot(page, "admin-tokens");
}

async function rooms(page) {
  await page.goto(`${url}/admin/realtime/room/`);
  const row = page.locator("#result_list tr", { hasText: options.room });
  await row.waitFor();
  report.liveMembers = await row.locator(".field-live_members").innerText();
  await shot(page, "admin-rooms");
}

async function dashboard(page) {
  await page.goto(`${url}/admin/realtime/connection/dashboard/?minutes=5`);
  await page.waitForSelector(".rt-chart svg polyline", { state: "attached" });
  report.dashboard = {
    total: await page.locator(".rt-total").innerText(),
    charts: await page.locator(".rt-chart h2").allInnerTexts(),
    drawn: await page.locator(".rt-chart polyline").evaluateAll((lines) =>
      lines.map((l) => l.points.numberOfItems)),
  };
  await shot(page, "admin-dashboard");
}

// The demo page loads the socket.io browser bundle; a new socket there carries the browser's cookie.
async function identity(page) {
  await page.goto(`${url}/`);
  await page.waitForFunction(() => typeof io === "function");
  return page.evaluate(() => new Promise((resolve) => {
    const socket = io("/private", { forceNew: true, reconnection: false });
    socket.on("connect", async () => { resolve(await socket.emitWithAck("identity")); socket.disconnect(); });
    socket.on("connect_error", (err) => resolve({ error: err.message }));
  }));
}

const browser = await chromium.launch({
  executablePath: options.chromium ?? process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true, args: ARGS, timeout: 30000,
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1680, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (error) => report.pageErrors.push(error.message));
  await login(page);
  await connections(page);
  await createToken(page);
  await rooms(page);
  await dashboard(page);
  report.loggedInIdentity = await identity(page);
  const stranger = await (await browser.newContext()).newPage();
  report.anonymousIdentity = await identity(stranger);
} catch (error) {
  report.error = String(error.stack ?? error);
  if (page) await page.screenshot({ path: `${options.screenshots}/admin-failed.png`, fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
