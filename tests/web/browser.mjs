// Drives Debian's chromium (headless, through playwright-core) over the web page, for
// tests/it/web/browser.rs. Usage:
//     node browser.mjs pages BASE_URL V2_HASH SCREENSHOT_DIR
//     node browser.mjs upload BASE_URL FILE
//     node browser.mjs verified BASE_URL V2_HASH
// Prints one JSON object with what it saw; the Rust test asserts on it. Any page error, dialog
// (an injected alert) or console error is collected, never ignored.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const [mode, base, v2, shots] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const problems = [];

async function open(viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", async (d) => {
    problems.push(`dialog: ${d.message()}`);
    await d.dismiss();
  });
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  return page;
}

/** axe-core's serious and critical violations on the page (run through DevTools, so the
 *  page's CSP, which forbids injected scripts, stays as it is). */
async function axe(page) {
  await page.evaluate(axeSource);
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

async function pages() {
  const out = { problems, violations: {}, screenshots: [] };
  for (const [label, viewport] of [["phone", { width: 390, height: 844 }], ["desktop", { width: 1280, height: 800 }]]) {
    const page = await open(viewport);
    await page.goto(`${base}/`);
    await page.waitForLoadState("networkidle");
    out.violations[`listing ${label}`] = await axe(page);
    const listing = `${shots}/listing-${label}.png`;
    await page.screenshot({ path: listing, fullPage: true });
    out.screenshots.push(listing);
    if (label === "desktop") {
      out.names = await page.locator("table.torrents tbody th a").allTextContents();
      // Filtering as you type hides the other rows.
      await page.fill("#q", "ü");
      out.visibleAfterFilter = await page.locator("table.torrents tbody tr:visible th a").allTextContents();
      await page.fill("#q", "");
    }
    await page.goto(`${base}/t/${v2}`);
    await page.waitForLoadState("networkidle");
    out.violations[`torrent ${label}`] = await axe(page);
    const torrent = `${shots}/torrent-${label}.png`;
    await page.screenshot({ path: torrent, fullPage: true });
    out.screenshots.push(torrent);
    if (label === "desktop") {
      out.title = await page.locator("h1").textContent();
      out.magnet = await page.locator("a[href^='magnet:']").getAttribute("href");
      const torrentHref = await page.locator("a[href^='/torrents/']").getAttribute("href");
      const response = await page.request.get(`${base}${torrentHref}`);
      out.torrentHex = Buffer.from(await response.body()).toString("hex");
      out.qr = await page.locator("figure.qr svg").count();
      // Keyboard: Tab from the top reaches the skip link first, then the site link.
      await page.goto(`${base}/`);
      await page.keyboard.press("Tab");
      out.firstFocus = await page.evaluate(() => document.activeElement.textContent.trim());
    }
    await page.context().close();
  }
  return out;
}

/** Shares a file through the page's form, waits for its link, fetches it back. */
async function upload(file) {
  const page = await open({ width: 1280, height: 800 });
  await page.goto(`${base}/`);
  const violations = await axe(page);
  await page.setInputFiles("#file", file);
  await page.click("#upload button[type=submit]");
  const link = page.locator("#uploaded");
  await link.waitFor({ timeout: 60000 });
  const href = await link.getAttribute("href");
  const name = basename(file);
  const back = await page.request.get(`${base}/files/${encodeURIComponent(name)}`);
  const sha256 = createHash("sha256").update(await back.body()).digest("hex");
  const progress = await page.locator("#upload progress").evaluate((p) => p.value / p.max);
  return { problems, violations, href, sha256, progress };
}

/** The verified download, kept in memory (a save dialog cannot be answered headless). */
async function verified() {
  const page = await open({ width: 1280, height: 800 });
  await page.goto(`${base}/t/${v2}`);
  await page.uncheck("#to-disk");
  await page.click("#verified button[type=submit]");
  const link = page.locator("#verified-file");
  await link.waitFor({ timeout: 120000 });
  const status = await page.locator("#verify-status").textContent();
  const seconds = Number(await link.getAttribute("data-seconds"));
  const sha256 = await page.evaluate(async () => {
    const blob = await (await fetch(document.getElementById("verified-file").href)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", blob));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  });
  return { problems, status, seconds, sha256 };
}

try {
  const modes = { pages: () => pages(), upload: () => upload(v2), verified: () => verified() };
  if (!modes[mode]) throw new Error(`unknown mode ${mode}`);
  console.log(JSON.stringify(await modes[mode]()));
} finally {
  await browser.close();
}
