// The official Socket.IO admin UI (@socket.io/admin-ui's built files) in Debian's Chromium (playwright-core):
// a wrong password is refused, the right one logs in, the sockets list shows the test clients, a socket's
// page shows its rooms, the rooms list shows the room, and the disconnect button disconnects a client.
// Prints one JSON report line; tests/e2e/test_admin_ui.py asserts on it (and on what the clients saw).
//
// usage: node admin_ui.mjs '{"ui": URL, "server": URL, "username": ..., "password": ..., "wrongPassword": ...,
//                            "socketIds": [...], "target": ID, "room": NAME, "pids": [...], "screenshots": DIR}'
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const TIMEOUT = options.timeout ?? 15000;
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-quic", "--disable-component-update", "--disable-sync",
];

const report = { error: null, pageErrors: [], consoleErrors: [], screenshots: [] };

async function shot(page, name) {
  const path = `${options.screenshots}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  report.screenshots.push(path);
}

// The login dialog (ConnectionModal.vue): server URL, username, password, Connect.
async function submitLogin(page, password) {
  const dialog = page.locator(".v-dialog--active");
  await dialog.waitFor();
  await dialog.getByLabel("Server URL").fill(options.server);
  await dialog.getByLabel("Username").fill(options.username);
  await dialog.getByLabel("Password").fill(password);
  await dialog.getByRole("button", { name: "Connect" }).click();
  return dialog;
}

async function refused(page) {
  const dialog = await submitLogin(page, options.wrongPassword);
  const error = dialog.locator(".red--text");
  await error.waitFor();
  report.refusal = (await error.innerText()).trim();
  await shot(page, "admin-ui-refused");
}

async function login(page) {
  const dialog = await submitLogin(page, options.password);
  await dialog.waitFor({ state: "hidden" });
  // the UI saves the session id when its "session" event arrives, just after the CONNECT that hid the dialog
  report.sessionSaved = await page
    .waitForFunction(() => Boolean(localStorage.getItem("session_id")), null, { timeout: 5000 })
    .then(() => true, () => false);
}

function socketRow(page, id) {
  return table(page, "IP address").locator("tbody tr", { hasText: id });
}

async function socketsList(page) {
  await page.goto(`${options.ui}#/sockets/`);
  for (const id of options.socketIds) await socketRow(page, id).waitFor();
  report.socketRows = {};
  for (const id of options.socketIds) {
    report.socketRows[id] = (await socketRow(page, id).locator("td").allInnerTexts()).map((t) => t.trim());
  }
  await shot(page, "admin-ui-sockets");
}

async function socketPage(page) {
  await socketRow(page, options.target).locator("td").first().click();
  await page.waitForURL(/#\/n\/.+\/sockets\//);
  const card = page.locator(".v-card", { has: page.locator(".v-card__title", { hasText: /^Rooms$/ }) });
  await card.locator("tbody tr", { hasText: options.room }).waitFor();
  report.socketPageRooms = (await card.locator("tbody tr").allInnerTexts()).map((t) => t.trim());
  report.socketPageText = await page.locator("main").innerText();
  await shot(page, "admin-ui-socket");
}

async function roomsList(page) {
  await page.goto(`${options.ui}#/rooms/`);
  const row = table(page, "# of sockets").locator("tbody tr", { hasText: options.room });
  await row.waitFor();
  report.roomRow = (await row.locator("td").allInnerTexts()).map((t) => t.trim());
  await shot(page, "admin-ui-rooms");
}

// (views slide in and out: a table is picked by its own column headers, never by position)
function table(page, header) {
  return page.locator(".v-data-table", { has: page.locator("th", { hasText: header }) });
}

async function servers(page) {
  await page.goto(`${options.ui}#/servers/`);
  const rows = table(page, "Hostname").locator("tbody tr");
  for (const pid of options.pids) await rows.filter({ hasText: String(pid) }).waitFor();
  report.serverRows = (await rows.allInnerTexts()).map((t) => t.trim());
  await shot(page, "admin-ui-servers");
}

// The disconnect button of the target's row in the sockets list; the row goes when socket_disconnected comes.
async function disconnect(page) {
  await page.goto(`${options.ui}#/sockets/`);
  const row = socketRow(page, options.target);
  await row.waitFor();
  await row.locator("button").click();
  await page.goto(`${options.ui}#/sockets/`);
  await row.waitFor({ state: "detached" });
  report.remainingRows = await table(page, "IP address").locator("tbody tr").allInnerTexts();
  await shot(page, "admin-ui-disconnected");
}

const browser = await chromium.launch({
  executablePath: options.chromium ?? "/usr/bin/chromium", headless: true, args: ARGS, timeout: 30000,
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  // The page asks Google Fonts and jsDelivr for fonts and icons; the test machine is offline.
  await context.route(/fonts\.googleapis\.com|cdn\.jsdelivr\.net/, (route) => route.abort());
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (error) => report.pageErrors.push(error.message));
  await page.goto(options.ui);
  await refused(page);
  await login(page);
  await servers(page);
  await socketsList(page);
  await socketPage(page);
  await roomsList(page);
  await disconnect(page);
} catch (error) {
  report.error = String(error.stack ?? error);
  if (page) await page.screenshot({ path: `${options.screenshots}/admin-ui-failed.png`, fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
