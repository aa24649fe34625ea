// tests/browser/demo.mjs - drives `wsstream serve`'s demo page in headless Debian chromium.
//
// Usage: node tests/browser/demo.mjs URL [SCREENSHOT]
//   URL         the page, e.g. http://127.0.0.1:PORT/ (scripts/browser-test.sh starts the server)
//   SCREENSHOT  where to save a PNG of the page at the end (default target/browser-test.png)
//
// Environment (optional): CHROMIUM (default /usr/bin/chromium), BROWSER_TEST_TIMEOUT_MS
// (default 30000, for each wait on the page).
//
// The page (crates/wsstream-cli/src/page.html) uses the browser's own WebSocketStream against
// /pingpong and writes one <div> per event into #output. This test waits for CONNECTED and a
// `RECEIVED: pong`, clicks #close, waits for the DISCONNECTED line, and checks it says
// code 1000 with the reason "closed from the page". The last line printed is
// `browser: 1 passed, 0 failed` (exit 0) or `browser: 0 passed, 1 failed` (exit 1).
//
// playwright-core never downloads a browser: it only drives the executable it is given.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

const url = process.argv[2];
const screenshot = process.argv[3] ?? "target/browser-test.png";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const timeout = Number(process.env.BROWSER_TEST_TIMEOUT_MS) || 30_000;

const CONNECTED = "CONNECTED";
const PONG = "RECEIVED: pong";
const DISCONNECTED = 'DISCONNECTED: code 1000, reason "closed from the page"';

const t0 = Date.now();
const log = (msg) => console.log(`demo.mjs: [${((Date.now() - t0) / 1000).toFixed(1).padStart(4)}s] ${msg}`);

function verdict(passed) {
  console.log(`browser: ${passed ? 1 : 0} passed, ${passed ? 0 : 1} failed`);
  process.exitCode = passed ? 0 : 1;
}

if (!url) {
  console.error("usage: node tests/browser/demo.mjs URL [SCREENSHOT]");
  verdict(false);
  process.exit();
}

// A hard stop in case something hangs outside Playwright's own timeouts (e.g. the launch).
const watchdog = setTimeout(() => {
  log(`FAIL: gave up after ${(4 * timeout + 60_000) / 1000} s`);
  verdict(false);
  process.exit();
}, 4 * timeout + 60_000);

const userDataDir = mkdtempSync(join(tmpdir(), "wsstream-chromium-"));
const pageEvents = [];
let context;
let page;

/** The page's event lines (#output > div), in order. */
const lines = () => page.$$eval("#output > div", (divs) => divs.map((d) => d.textContent));

/** Waits until `pred` (run in the page, so self-contained) returns true. */
async function waitFor(what, pred) {
  try {
    await page.waitForFunction(pred, undefined, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}`, { cause: e });
  }
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
  log(`ok: ${msg}`);
}

let passed = false;
try {
  const started = Date.now();
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    timeout: 60_000,
    viewport: { width: 900, height: 640 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // scripts/browser-test.sh serves the https:// pass with a self-signed certificate.
      ...(url.startsWith("https:") ? ["--ignore-certificate-errors"] : []),
    ],
  });
  const version = context.browser()?.version() ?? "(unknown)";
  log(`chromium ${version} (${executablePath}), launched in ${Date.now() - started} ms`);

  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on("console", (m) => pageEvents.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => pageEvents.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => pageEvents.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));

  const response = await page.goto(url, { waitUntil: "load" });
  check(response?.ok(), `GET ${url} answered ${response?.status()}`);

  const hasWSS = await page.evaluate(() => "WebSocketStream" in self);
  if (!hasWSS) {
    throw new Error(`chromium ${version} has no WebSocketStream (the page cannot run)`);
  }

  // A page-side ERROR line ends the wait early instead of timing out.
  await waitFor(`"${CONNECTED}" and "${PONG}"`, () => {
    const ls = [...document.querySelectorAll("#output > div")].map((d) => d.textContent);
    return ls.some((l) => l.startsWith("ERROR")) || (ls.includes("CONNECTED") && ls.includes("RECEIVED: pong"));
  });
  let seen = await lines();
  check(!seen.some((l) => l.startsWith("ERROR")), "no ERROR line before Close");
  check(seen[0] === CONNECTED, `first line is "${CONNECTED}"`);
  check(seen.includes("SENT: ping"), 'a "SENT: ping" line');
  check(seen.includes(PONG), `at least one "${PONG}" line`);

  await page.click("#close");
  await waitFor("a DISCONNECTED line", () =>
    [...document.querySelectorAll("#output > div")].some((d) => d.textContent.startsWith("DISCONNECTED")),
  );
  seen = await lines();
  const disconnected = seen.filter((l) => l.startsWith("DISCONNECTED"));
  check(disconnected.length === 1, "exactly one DISCONNECTED line");
  check(disconnected[0] === DISCONNECTED, `close line is '${DISCONNECTED}' (got '${disconnected[0]}')`);
  check(!seen.some((l) => l.startsWith("ERROR")), "no ERROR line after Close");
  check(await page.isDisabled("#close"), "the Close button is disabled after the close");

  log(`page log: ${JSON.stringify(seen)}`);
  passed = true;
} catch (e) {
  log(`FAIL: ${e.message}`);
  if (e.cause?.message) log(`  cause: ${e.cause.message.split("\n")[0]}`);
  if (page) {
    try {
      log(`page log: ${JSON.stringify(await lines())}`);
    } catch {
      // the page is gone
    }
  }
  for (const ev of pageEvents) log(`  ${ev}`);
} finally {
  if (page) {
    try {
      mkdirSync(dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true, timeout: 10_000 });
      log(`screenshot: ${screenshot}`);
    } catch (e) {
      log(`no screenshot: ${e.message.split("\n")[0]}`);
    }
  }
  try {
    const closing = Date.now();
    await context?.close();
    if (context) log(`chromium closed in ${Date.now() - closing} ms`);
  } catch {
    // the browser is gone already
  }
  rmSync(userDataDir, { recursive: true, force: true });
  clearTimeout(watchdog);
}
verdict(passed);
