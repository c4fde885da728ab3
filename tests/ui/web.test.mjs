// Quarry's web page in a real browser: headless Chromium from Debian's packages, driven by
// playwright-core (no browser download), against `quarry serve` on a fresh demo workspace with
// the real model. Screenshots of each page go to tests/ui/artefacts (QUARRY_UI_ARTEFACTS).
//
//   QUARRY_BIN=<path to quarry> npm test      (make test runs it)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import net from "node:net";
import { chromium } from "playwright-core";

const repo = resolve(import.meta.dirname, "../..");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/quarry/target");
const bin = process.env.QUARRY_BIN ?? join(targetDir, "release/quarry");
const artefacts = process.env.QUARRY_UI_ARTEFACTS ?? join(repo, "tests/ui/artefacts");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server, browser, base;
const keys = {};

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
  // Keys are made before the server starts; serve creates the demo warehouse and index.
  for (const role of ["analyst", "steward", "admin"]) {
    const created = execFileSync(bin, ["keys", "create", "--name", `ui-${role}`, "--role", role], { cwd: repo, env }).toString();
    keys[role] = created.match(/qk_[0-9a-f]+/)?.[0];
    assert.ok(keys[role], `no key in: ${created}`);
  }
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

// A page signed in with the key of `role`, showing `view` (a hash such as "#catalog").
async function openAs(role, view = "") {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${base}/#key=${keys[role]}`);
  await page.locator("#whoami", { hasText: role }).waitFor();
  if (view) await page.evaluate((hash) => { location.hash = hash; }, view);
  return page;
}

const openAsAnalyst = () => openAs("analyst");

// Asks a question from the page and waits for the SQL; returns the stages the page showed.
async function ask(page, question) {
  await page.evaluate(() => {
    window.stagesSeen = [];
    new MutationObserver(() => {
      const active = document.querySelector("#progress li.active");
      if (active && window.stagesSeen.at(-1) !== active.dataset.stage) window.stagesSeen.push(active.dataset.stage);
    }).observe(document.getElementById("progress"), { subtree: true, attributes: true });
  });
  await page.fill("#question", question);
  await page.click("#ask-button");
  await page.locator("#answer-sql, #error").first().waitFor({ timeout: 180_000 });
  return page.evaluate(() => window.stagesSeen);
}

test("the first page becomes interactive quickly", async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/#key=${keys.analyst}`);
  // Ready: signed in (the key checked by the server) and the question box shown.
  await page.waitForFunction(() => !document.getElementById("view-ask").hidden);
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    return { domInteractiveMs: nav.domInteractive, loadMs: nav.loadEventEnd, signedInMs: performance.now() };
  });
  writeFileSync(join(artefacts, "first-page-timing.json"), JSON.stringify(timing, null, 2));
  console.log(`first page: interactive after ${timing.domInteractiveMs.toFixed(0)} ms, loaded after ${timing.loadMs.toFixed(0)} ms, signed in and ready by ${timing.signedInMs.toFixed(0)} ms`);
  assert.ok(await page.locator("#ask-button").isEnabled());
  await page.close();
});

test("an analyst asks a question and sees progress, the SQL, the tables and the rows", async () => {
  const page = await openAsAnalyst();
  const stages = await ask(page, "How many users are on each plan?");
  // A one-line reading of what the SQL computes, read from the SQL itself.
  assert.match(await page.locator("#reading").textContent(), /per plan, from users/i);
  // Streamed as they happen (the SSE events); quick stages may pass between two paints.
  assert.equal(stages[0], "retrieving", `stages: ${stages}`);
  assert.ok(stages.includes("generating"), `stages: ${stages}`);
  const sql = page.locator("#answer-sql");
  const text = (await sql.textContent()).toLowerCase();
  assert.match(text, /\busers\b/);
  assert.match(text, /\bplan\b/);
  const rows = await page.locator("#rows tbody tr").count();
  assert.ok(rows >= 2, `${rows} rows`);
  // The SQL was shown as the model wrote it (the box is hidden once the answer is in).
  assert.match((await page.locator("#writing").textContent()).toLowerCase(), /select[\s\S]*\busers\b/);
  // A plan and a count: a bar per row, which the toggle hides and shows.
  assert.equal(await page.locator("#chart").getAttribute("data-kind"), "bar");
  assert.equal(await page.locator("#chart rect").count(), rows);
  await page.screenshot({ path: join(artefacts, "ask.png"), fullPage: true });
  await page.click("#chart-toggle");
  assert.equal(await page.locator("#chart").isVisible(), false);
  await page.click("#chart-toggle");
  assert.equal(await page.locator("#chart").isVisible(), true);
  assert.ok(await page.locator("#copy-sql").isVisible());
  // How far to trust it, in words: one of the three levels.
  assert.match(await page.locator("#confidence-level").textContent(), /^(confident|check this|not sure)$/);
  // The users table as a card: certified, with its owner and why it was chosen.
  const card = page.locator(".table[data-table='users']");
  assert.match(await card.textContent(), /certified/);
  assert.ok((await card.locator(".evidence li").count()) > 0);
  assert.ok(await card.locator("input.pick").isChecked());
  await page.close();
});

test("while the model works the page counts the seconds, and stop tells the server to stop", async () => {
  const page = await openAsAnalyst();
  const question = "Which 3 advertisers spent the most on ads in July 2026?";
  await page.fill("#question", question);
  await page.click("#ask-button");
  await page.waitForFunction(() => /^\d+ s$/.test(document.getElementById("elapsed").textContent), null, { timeout: 60_000 });
  await page.locator('#progress li[data-stage="generating"].active').waitFor({ timeout: 120_000 });
  await page.click("#ask-stop");
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Stopped after"), null, { timeout: 10_000 });
  assert.equal(await page.locator("#progress").isVisible(), false);
  assert.equal(await page.locator("#ask-button").isDisabled(), false);
  assert.equal(await page.locator("#answer-sql").count(), 0);
  // The server stopped the question (its client went away) and audited it.
  const audited = async () => {
    const response = await fetch(`${base}/api/v1/audit?kind=ask&limit=20`, { headers: { authorization: `Bearer ${keys.admin}` } });
    const { records } = await response.json();
    return records.find((r) => r.question === question);
  };
  let record;
  for (let i = 0; i < 60 && !record; i++) {
    record = await audited();
    if (!record) await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(record, "the stopped question is in the audit log");
  assert.equal(record.outcome, "failed");
  assert.match(JSON.stringify(record.detail), /cancelled/);
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

test("a question with a time phrase shows how it was read", async () => {
  const page = await openAsAnalyst();
  await ask(page, "How many orders were placed in September 2026?");
  assert.equal(await page.locator("#error").count(), 0, "the question is answered");
  assert.match(await page.locator("#periods").textContent(), /september 2026.*2026-09-01 to 2026-09-30/);
  const sql = (await page.locator("#answer-sql").textContent()).trim();
  // Asked again: the kept answer, its SQL run again on the current data, said so.
  await ask(page, "How many orders were placed in September 2026?");
  assert.match(await page.locator("#timings").textContent(), /asked before: the same SQL validated and run again/);
  assert.equal((await page.locator("#answer-sql").textContent()).trim(), sql);
  await page.close();
});

// Runs SQL as `role` through the API; its rows as sorted JSON lines (a multiset, as the
// evaluation compares results).
async function rowsOf(sql, role = "analyst") {
  const response = await fetch(`${base}/api/v1/sql`, {
    method: "POST",
    headers: { authorization: `Bearer ${keys[role]}`, "content-type": "application/json" },
    body: JSON.stringify({ sql }),
  });
  const body = await response.json();
  assert.ok(response.ok, `${sql}: ${JSON.stringify(body)}`);
  return body.result.rows.map((r) => JSON.stringify(r)).sort();
}

test("a follow-up is answered in its conversation, and the analyst can branch or start anew", async () => {
  const page = await openAsAnalyst();
  await ask(page, "orders per month in 2026");
  await page.locator("#thread #follow-up").waitFor();
  assert.deepEqual(await page.locator("#thread-turns li").allTextContents(), ["orders per month in 2026"]);
  await page.fill("#follow-up", "only refunded ones");
  await page.click("#follow-up-button");
  await page.waitForFunction(() => document.querySelectorAll("#thread-turns li").length === 2, null, { timeout: 240_000 });
  assert.equal(await page.locator("#error").count(), 0, "the follow-up is answered");
  // The second step's SQL is the first's, refunded orders only: the same rows as the gold.
  const headers = { authorization: `Bearer ${keys.analyst}` };
  const { threads } = await (await fetch(`${base}/api/v1/threads`, { headers })).json();
  const thread = await (await fetch(`${base}/api/v1/threads/${threads[0].id}`, { headers })).json();
  assert.deepEqual(thread.turns.map((t) => t.question), ["orders per month in 2026", "only refunded ones"]);
  const second = thread.turns[1].sql;
  assert.equal((await page.locator("#answer-sql").textContent()).trim(), second.trim());
  const gold = "SELECT strftime('%Y-%m', ordered_at) AS month, COUNT(*) AS orders FROM orders " +
    "WHERE ordered_at >= '2026-01-01' AND ordered_at < '2027-01-01' AND status = 'refunded' GROUP BY month";
  assert.deepEqual(await rowsOf(second), await rowsOf(gold), `the follow-up's SQL: ${second}`);
  // The conversation is listed; an earlier turn can be followed up instead (a branch).
  await page.locator("#thread-list a", { hasText: "orders per month in 2026" }).first().waitFor();
  await page.click("#thread-turns a.branch[data-turn='1']");
  assert.match(await page.locator("#follow-up-on").textContent(), /continues turn 1/);
  await page.screenshot({ path: join(artefacts, "thread.png"), fullPage: true });
  await page.click("#new-thread");
  assert.ok(await page.locator("#thread").isHidden(), "a new conversation starts from the empty page");
  await page.close();
});

// A question the demo's data reads more than one way; the real model's five candidates (fixed
// seeds) split on it. The integration suite asks it too (tests/it/choices.rs).
const AMBIGUOUS = "How big were orders in the summer?";

test("a question read more than one way: compare readings shows choices, and a choice answers it", async () => {
  const page = await openAsAnalyst();
  await ask(page, AMBIGUOUS);
  // Asked again with five candidates; they disagree, so the page asks which reading was meant.
  await page.click("#compare");
  await page.locator("#choices, #agreement, #error").first().waitFor({ timeout: 420_000 });
  assert.equal(await page.locator("#choices").count(), 1, `the candidates disagreed: ${await page.locator("#answer").textContent()}`);
  const choices = page.locator("#choices li");
  assert.ok((await choices.count()) >= 2, "two or three readings");
  assert.equal(await page.locator("#choices li.shown").count(), 1, "the one shown is marked");
  await page.screenshot({ path: join(artefacts, "choices.png"), fullPage: true });
  // Choosing another reading answers with it: its SQL, its reading, its rows.
  const other = page.locator("#choices button.choose").first();
  const index = Number(await other.getAttribute("data-choice"));
  await other.click();
  await page.locator(`#choices li.shown[data-choice="${index}"]`).waitFor({ timeout: 60_000 });
  const headers = { authorization: `Bearer ${keys.analyst}` };
  const { threads } = await (await fetch(`${base}/api/v1/threads`, { headers })).json();
  const thread = await (await fetch(`${base}/api/v1/threads/${threads[0].id}`, { headers })).json();
  const turn = thread.turns.at(-1);
  assert.equal((await page.locator("#answer-sql").textContent()).trim(), turn.sql.trim(), "the turn is answered with the chosen reading");
  assert.equal((await page.locator("#reading").textContent()).trim(), `Reads as: ${turn.choices[index].reading}`);
  assert.match(await page.locator("#confidence-reasons").textContent(), /you chose this reading/);
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

test("an analyst unpicks tables and regenerates from the ones left", async () => {
  const page = await openAsAnalyst();
  await ask(page, "How many orders were placed in each country?");
  const picks = page.locator("#table-cards input.pick");
  assert.ok((await picks.count()) >= 2, "retrieval offered several tables");
  // Keep only orders, and add countries by name.
  for (const pick of await picks.all()) {
    if ((await pick.getAttribute("data-table")) !== "orders") await pick.uncheck();
  }
  await page.fill("#add-table", "countries");
  await page.dispatchEvent("#add-table", "change");
  await page.click("#regenerate");
  await page.locator("#table-cards .table[data-table='countries'] input.pick:checked").waitFor({ timeout: 180_000 });
  const offered = await page.locator("#table-cards .table").evaluateAll((cards) => cards.map((c) => c.dataset.table));
  assert.deepEqual([...offered].sort(), ["countries", "orders"]);
  assert.match(await page.locator("#table-cards").textContent(), /picked by you/);
  await page.screenshot({ path: join(artefacts, "picked-tables.png"), fullPage: true });
  await page.close();
});

test("👍 is a vote: a steward verifies it in the review queue, then it answers the question next time", async () => {
  const page = await openAsAnalyst();
  const question = "How many users are on each plan?";
  await ask(page, question);
  assert.equal(await page.locator("#error").count(), 0, "answered");
  await page.locator("#rows").waitFor();
  const sql = (await page.locator("#answer-sql").textContent()).trim();
  await page.click("#thumbs-up");
  await page.locator("#feedback-status", { hasText: "steward reviews it" }).waitFor();

  await page.click("nav a[data-view='library']");
  await page.fill("#library-q", "number of users per plan");
  await page.click("#library-form button");
  const entry = page.locator(".query", { hasText: question });
  await entry.waitFor();
  assert.match(await entry.textContent(), /ui-analyst/);
  await entry.locator("button.open").click();
  assert.equal((await entry.locator("pre").textContent()).trim(), sql);
  await page.screenshot({ path: join(artefacts, "library.png"), fullPage: true });
  await entry.locator("button.run").click();
  await page.locator("#rows").waitFor();
  // An analyst has no review queue.
  assert.equal(await page.locator("nav a[data-view='review']").isVisible(), false);

  // The steward finds the vote in the review queue and verifies it.
  const steward = await openAs("steward", "#review");
  const item = steward.locator("#review-list .review", { hasText: question });
  await item.waitFor();
  assert.match(await item.textContent(), /ui-analyst/);
  await item.locator(".review-comment").fill("checked against the users table");
  await item.locator("button.verify").click();
  await item.locator(".review-outcome", { hasText: "verified" }).waitFor();
  await steward.screenshot({ path: join(artefacts, "review.png"), fullPage: true });
  // The users table's catalog page lists it too, verified, with revoke at hand.
  await steward.evaluate(() => { location.hash = "#catalog/users"; });
  const onTable = steward.locator("#table-reviews .review", { hasText: question });
  await onTable.waitFor();
  assert.match(await onTable.textContent(), /verified/);
  assert.ok(await onTable.locator("button.revoke").isVisible());
  await steward.close();

  // Asked again, the verified query answers without the model, naming who verified it.
  await page.click("nav a[data-view='ask']");
  await ask(page, question);
  assert.match(await page.locator("#reused").textContent(), /verified by ui-steward/);
  await page.close();
});

test("a verified query answers the same question for another month, saying what it swapped", async () => {
  const sql = "SELECT COUNT(*) AS orders FROM orders WHERE status = 'refunded' " +
    "AND ordered_at >= '2026-09-01' AND ordered_at < '2026-10-01'";
  const review = await fetch(`${base}/api/v1/reviews`, {
    method: "POST",
    headers: { authorization: `Bearer ${keys.steward}`, "content-type": "application/json" },
    body: JSON.stringify({ question: "How many orders were refunded in September 2026?", sql, decision: "verify", comment: "checked" }),
  });
  assert.equal(review.status, 200, await review.text());
  const page = await openAsAnalyst();
  await ask(page, "How many orders were refunded in August 2026?");
  await page.locator("#rows").waitFor();
  assert.match(await page.locator("#reused").textContent(), /with “august 2026” for “september 2026”/);
  assert.match(await page.locator("#answer-sql").textContent(), /'2026-08-01'.*'2026-09-01'/s);
  await page.screenshot({ path: join(artefacts, "template.png"), fullPage: true });
  await page.close();
});

test("suggested questions wait on the empty page; a verified one answers at once, labelled trusted", async () => {
  const page = await openAsAnalyst();
  await page.locator("#suggestion-list li").first().waitFor();
  const count = await page.locator("#suggestion-list li").count();
  assert.ok(count >= 3 && count <= 5, `${count} suggestions`);
  await page.screenshot({ path: join(artefacts, "suggestions.png"), fullPage: true });
  const verified = page.locator("#suggestion-list li", { has: page.locator(".badge.verified") }).first();
  const question = await verified.locator(".suggestion").textContent();
  await verified.locator(".suggestion").click();
  await page.locator("#answer-sql").waitFor({ timeout: 180_000 });
  assert.equal(await page.inputValue("#question"), question);
  assert.equal(await page.locator("#trusted").textContent(), "trusted");
  assert.match(await page.locator("#reused").textContent(), /verified by/);
  // After the answer, questions close to it (never the one just asked).
  await page.locator("#suggestion-list li").first().waitFor();
  assert.ok(!(await page.locator("#suggestion-list .suggestion").allTextContents()).includes(question));
  await page.close();
});

test("the rows download as CSV, in the order shown, safe to open in a spreadsheet", async () => {
  const page = await openAsAnalyst();
  const sql = "SELECT plan, COUNT(*) AS users, '=1+1' AS formula, 'a, \"b\"' AS quoted FROM users GROUP BY plan ORDER BY plan";
  await runSql(page, sql, "#rows");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-csv")]);
  assert.match(download.suggestedFilename(), /^quarry-\d{4}-\d{2}-\d{2}\.csv$/);
  const lines = readFileSync(await download.path(), "utf8").trimEnd().split("\r\n");
  assert.equal(lines[0], "plan,users,formula,quoted");
  const shown = await page.locator("#rows tbody tr").count();
  assert.equal(lines.length, shown + 1);
  assert.match(lines[1], /^free,\d+,'=1\+1,"a, ""b"""$/);
  await page.close();
});

test("on a phone: a link asks its question again, one number shows as a number, and sign-out forgets the key", async () => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await page.goto(`${base}/#key=${keys.analyst}`);
  await page.locator("#whoami", { hasText: "analyst" }).waitFor();
  const question = "How many refunds, and what refunded amount, per refund reason in 2026?";
  await page.evaluate((q) => { location.hash = `#ask/${encodeURIComponent(q)}`; }, question);
  await page.locator("#answer-sql").waitFor({ timeout: 180_000 });
  assert.equal(await page.inputValue("#question"), question);
  assert.ok(await page.locator("#copy-link").isVisible());
  await runSql(page, "SELECT COUNT(*) AS users FROM users", "#single-number");
  assert.match(await page.locator("#single-number .number").textContent(), /^\d{1,3}(,\d{3})*$/);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page is ${width} px wide at 390 px`);
  await page.screenshot({ path: join(artefacts, "phone.png"), fullPage: true });
  await page.click("#sign-out");
  await page.locator("#signed-out").waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem("quarry.api_key")), null);
  assert.ok(await page.locator("#view-ask").isHidden());
  await page.close();
});

test("a steward tags a column as personal data and the analyst's next query on it is refused", async () => {
  const sql = "SELECT device, COUNT(*) AS sessions FROM user_sessions GROUP BY device";
  const analyst = await openAsAnalyst();
  await runSql(analyst, sql, "#rows");

  const steward = await openAs("steward", "#catalog");
  await steward.locator("#catalog-list tr[data-table='user_sessions']").waitFor();
  await steward.check("#filter-deprecated");
  // The filtered list replaces the whole one: wait for it, not for a row both lists have.
  await steward.locator("#catalog-list tr[data-table='user_sessions']").waitFor({ state: "detached" });
  await steward.locator("#catalog-list tr[data-table='user_profiles_v1']").waitFor();
  assert.equal(await steward.locator("#catalog-list tr[data-table='user_sessions']").count(), 0);
  await steward.screenshot({ path: join(artefacts, "catalog.png"), fullPage: true });
  await steward.uncheck("#filter-deprecated");
  await steward.click("#catalog-list a[href='#catalog/user_sessions']");
  await steward.click("#edit-table");
  // A tag the catalog does not know: the error shows next to the field, nothing is saved.
  await steward.fill("[data-field='columns.device.tags']", "personal");
  await steward.fill("[data-field='comment']", "device fingerprints count as personal data (DPO ruling)");
  await steward.click("#table-save");
  const fieldError = steward.locator("[data-error-for='columns.device.tags']");
  await fieldError.filter({ hasText: "personal" }).waitFor();
  assert.match(await fieldError.textContent(), /pii/, "the allowed tags are listed");
  await steward.screenshot({ path: join(artefacts, "catalog-field-error.png"), fullPage: true });
  await steward.fill("[data-field='columns.device.tags']", "pii");
  await steward.click("#table-save");
  await steward.locator("#revisions", { hasText: "DPO ruling" }).waitFor();
  assert.match(await steward.locator("#columns tr[data-column='device']").textContent(), /pii/);
  await steward.screenshot({ path: join(artefacts, "catalog-table.png"), fullPage: true });
  await steward.close();

  const error = await runSql(analyst, sql, "#error");
  assert.match(await error.textContent(), /device/);
  assert.match(await error.textContent(), /pii/);
  await analyst.close();
});

test("a steward defines a term on the glossary page; an analyst reads it there without edit controls", async () => {
  const page = await openAs("steward", "#glossary");
  await page.locator("#glossary-list tr[data-term='paid user']").waitFor();
  await page.click("#new-term");
  await page.fill("#glossary-term", "weekly active user");
  await page.fill("#glossary-definition", "A user with at least one row in daily_active_users in the 7 days up to the day asked about.");
  await page.fill("#glossary-tables", "daily_active_users");
  // Without a reason the server names the missing field, and nothing is saved.
  await page.click("#glossary-save");
  await page.locator("#glossary-status", { hasText: "comment" }).waitFor();
  await page.fill("#glossary-comment", "the growth team's definition");
  await page.click("#glossary-save");
  await page.locator("#glossary-list tr[data-term='weekly active user']").waitFor();
  assert.match(await page.locator("#glossary-list tr[data-term='weekly active user']").textContent(), /daily_active_users/);
  await page.screenshot({ path: join(artefacts, "glossary.png"), fullPage: true });
  await page.close();

  const reader = await openAs("analyst", "#glossary");
  await reader.locator("#glossary-list tr[data-term='weekly active user']").waitFor();
  assert.equal(await reader.locator("#glossary-list .edit-term").count(), 0);
  assert.ok(await reader.locator("#new-term").isHidden());
  await reader.close();
});

test("an analyst sees no steward or admin controls, and the server refuses them anyway", async () => {
  const page = await openAs("analyst", "#catalog/users");
  await page.locator("#columns").waitFor();
  assert.equal(await page.locator(".steward-control, #table-edit, .edit-only").count(), 0);
  assert.equal(await page.locator("nav a[data-view='audit']").isVisible(), false);
  assert.equal(await page.locator("nav a[data-view='catalog']").isVisible(), true);
  // The audit view is not offered: its address falls back to asking.
  await page.evaluate(() => { location.hash = "#audit"; });
  await page.locator("#view-ask").waitFor();
  assert.equal(await page.locator("#view-audit").isVisible(), false);
  const statuses = await page.evaluate(async (key) => {
    const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    const patch = await fetch("/api/v1/catalog/tables/users", { method: "PATCH", headers, body: JSON.stringify({ tier: 2, comment: "x" }) });
    const audit = await fetch("/api/v1/audit", { headers });
    return [patch.status, audit.status];
  }, keys.analyst);
  assert.deepEqual(statuses, [403, 403]);
  await page.close();
});

test("an admin filters the audit log of asks, runs, refusals and edits", async () => {
  // A record with one long unbroken value: it wraps inside the table instead of widening it.
  await rowsOf(`SELECT '${"x".repeat(300)}' AS long_value`);
  const page = await openAs("admin", "#audit");
  await page.locator("#audit-list tbody tr").first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the audit view is ${overflow} px wider than the window`);
  const kinds = await page.locator("#audit-list tbody tr").evaluateAll((rows) => [...new Set(rows.map((r) => r.dataset.kind))]);
  // 'access': the analyst's refused audit request above is audited too.
  assert.deepEqual([...kinds].sort(), ["access", "ask", "edit", "sql"]);
  await page.selectOption("#audit-outcome", "refused");
  await page.waitForFunction(() => [...document.querySelectorAll("#audit-list tbody tr")].every((r) => r.dataset.outcome === "refused"));
  const outcomes = await page.locator("#audit-list tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.outcome));
  assert.ok(outcomes.length > 0 && outcomes.every((o) => o === "refused"), `${outcomes}`);
  assert.match(await page.locator("#audit-list").textContent(), /ui-analyst/);
  await page.screenshot({ path: join(artefacts, "audit.png"), fullPage: true });
  await page.selectOption("#audit-outcome", "");
  await page.fill("#audit-principal", "ui-steward");
  await page.click("#audit-form button");
  await page.waitForFunction(() => [...document.querySelectorAll("#audit-list tbody tr")].every((r) => r.textContent.includes("ui-steward")));
  assert.match(await page.locator("#audit-list").textContent(), /edit/);
  await page.close();
});

test("the API page lists every documented route from the OpenAPI document, offline", async () => {
  const page = await browser.newPage();
  const elsewhere = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) elsewhere.push(r.url()); });
  await page.goto(`${base}/`);
  await page.click("#api-link");
  await page.waitForURL(`${base}/api`);
  await page.locator("details.op[data-path]").first().waitFor();
  const document = await (await fetch(`${base}/api/v1/openapi.json`)).json();
  const documented = Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((m) => `${m} ${path}`)).sort();
  const shown = (await page.locator("details.op[data-path]").evaluateAll((ops) => ops.map((o) => `${o.dataset.method} ${o.dataset.path}`))).sort();
  assert.deepEqual(shown, documented);
  await page.locator('details.op[data-path="/api/v1/ask"] summary').click();
  assert.match(await page.locator('details.op[data-path="/api/v1/ask"]').textContent(), /Bearer.*422/s);
  assert.deepEqual(elsewhere, []);
  await page.screenshot({ path: join(artefacts, "api.png"), fullPage: true });
  await page.close();
});
