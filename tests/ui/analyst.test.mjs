// Quarry's web page in a real browser: headless Chromium from Debian's packages, driven by
// playwright-core (no browser download), against `quarry serve` on a fresh demo workspace with
// the real model. Screenshots of each page go to tests/ui/artefacts (QUARRY_UI_ARTEFACTS).
//
//   QUARRY_BIN=<path to quarry> npm test      (make test runs it)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import net from "node:net";
import { chromium } from "playwright-core";

const repo = resolve(import.meta.dirname, "../..");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/quarry/target");
const bin = process.env.QUARRY_BIN ?? join(targetDir, "release/quarry");
const artefacts = process.env.QUARRY_UI_ARTEFACTS ?? join(repo, "tests/ui/artefacts");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server, browser, base, analystKey;

function freePort() {
  return new Promise((done, fail) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
    probe.on("error", fail);
  });
}

async function waitForHealth(url, seconds) {
  for (let i = 0; i < seconds * 2; i++) {
    if (server.exitCode !== null) throw new Error(`quarry serve exited with ${server.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`quarry serve did not answer ${url} within ${seconds} s`);
}

before(async () => {
  mkdirSync(artefacts, { recursive: true });
  const workspace = mkdtempSync(join(tmpdir(), "quarry-ui-"));
  const port = await freePort();
  const env = { ...process.env, QUARRY_WORKSPACE: workspace, QUARRY_PORT: String(port) };
  // The key is made before the server starts; serve creates the demo warehouse and index.
  const created = execFileSync(bin, ["keys", "create", "--name", "ui-analyst", "--role", "analyst"], { cwd: repo, env }).toString();
  analystKey = created.match(/qk_[0-9a-f]+/)?.[0];
  assert.ok(analystKey, `no key in: ${created}`);
  server = spawn(bin, ["serve"], { cwd: repo, env, stdio: ["ignore", "inherit", "inherit"] });
  base = `http://127.0.0.1:${port}`;
  await waitForHealth(`${base}/healthz`, 300);
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

// Runs SQL from the page's editor and waits for what it should show (#rows, #chart, #error).
async function runSql(page, sql, shows) {
  await page.fill("#sql", sql);
  await page.click("#sql-button");
  const shown = page.locator(shows);
  await shown.waitFor({ timeout: 60_000 });
  return shown;
}

async function openAsAnalyst() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${base}/#key=${analystKey}`);
  await page.locator("#question").waitFor();
  return page;
}

test("the first page becomes interactive quickly", async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    return { domInteractiveMs: nav.domInteractive, loadMs: nav.loadEventEnd };
  });
  writeFileSync(join(artefacts, "first-page-timing.json"), JSON.stringify(timing, null, 2));
  console.log(`first page: interactive after ${timing.domInteractiveMs.toFixed(0)} ms, loaded after ${timing.loadMs.toFixed(0)} ms`);
  assert.ok(await page.locator("#ask-button").isEnabled());
  await page.close();
});

test("an analyst asks a question and sees the SQL and the rows", async () => {
  const page = await openAsAnalyst();
  await page.fill("#question", "How many users are on each plan?");
  await page.click("#ask-button");
  const sql = page.locator("#answer-sql");
  await sql.waitFor({ timeout: 180_000 });
  const text = (await sql.textContent()).toLowerCase();
  assert.match(text, /\busers\b/);
  assert.match(text, /\bplan\b/);
  const rows = await page.locator("#rows tbody tr").count();
  assert.ok(rows >= 2, `${rows} rows`);
  // A plan and a count: a bar per row, which the toggle hides and shows.
  assert.equal(await page.locator("#chart").getAttribute("data-kind"), "bar");
  assert.equal(await page.locator("#chart rect").count(), rows);
  await page.screenshot({ path: join(artefacts, "ask.png"), fullPage: true });
  await page.click("#chart-toggle");
  assert.equal(await page.locator("#chart").isVisible(), false);
  await page.click("#chart-toggle");
  assert.equal(await page.locator("#chart").isVisible(), true);
  assert.ok(await page.locator("#copy-sql").isVisible());
  await page.close();
});

test("an analyst edits SQL and runs it under the same governance", async () => {
  const page = await openAsAnalyst();
  await runSql(page, "SELECT plan, COUNT(*) AS users FROM users GROUP BY plan ORDER BY plan", "#rows");
  const header = await page.locator("#rows thead").textContent();
  assert.match(header, /plan/);
  assert.ok((await page.locator("#rows tbody tr").count()) >= 2);
  await page.screenshot({ path: join(artefacts, "sql.png"), fullPage: true });

  // Sort by the count, both ways.
  const counts = async () => (await page.locator("#rows tbody tr td:nth-child(2)").allTextContents()).map(Number);
  await page.click("#rows th[data-column='1']");
  const up = await counts();
  assert.deepEqual(up, [...up].sort((a, b) => a - b));
  await page.click("#rows th[data-column='1']");
  const down = await counts();
  assert.deepEqual(down, [...up].reverse());
  await page.close();
});

test("long results come a page at a time, and a date with a number is a line chart", async () => {
  const page = await openAsAnalyst();
  await runSql(page, "SELECT user_id, plan FROM users ORDER BY user_id LIMIT 120", "#rows");
  assert.equal(await page.locator("#rows tbody tr").count(), 50);
  assert.equal(await page.locator("#page-label").textContent(), "page 1 of 3");
  const firstIds = await page.locator("#rows tbody tr td:first-child").allTextContents();
  await page.click("#next-page");
  assert.equal(await page.locator("#page-label").textContent(), "page 2 of 3");
  const secondIds = await page.locator("#rows tbody tr td:first-child").allTextContents();
  assert.ok(Number(secondIds[0]) > Number(firstIds[49]), "the second page continues the first");

  const sql = "SELECT activity_date, COUNT(*) AS users FROM daily_active_users GROUP BY activity_date ORDER BY activity_date DESC LIMIT 30";
  await runSql(page, sql, "#chart");
  assert.equal(await page.locator("#chart").getAttribute("data-kind"), "line");
  assert.equal(await page.locator("#chart polyline").count(), 1);
  await page.screenshot({ path: join(artefacts, "line-chart.png"), fullPage: true });
  await page.close();
});

test("a refused query shows its explanation", async () => {
  const page = await openAsAnalyst();
  const error = await runSql(page, "SELECT email FROM users", "#error");
  const text = await error.textContent();
  assert.match(text, /email/);
  assert.match(text, /pii/);
  assert.equal(await page.locator("#rows").count(), 0, "no rows are shown for a refused query");
  await page.screenshot({ path: join(artefacts, "refused.png"), fullPage: true });
  await page.close();
});
