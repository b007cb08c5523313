#!/usr/bin/env node
// Browser test of the Veritas live dashboard.
//
//   node check.mjs <url> <screenshot.png> [--timeout-secs 90] [--min-snapshots 3]
//                  [--min-recent 1] [--width 1600] [--height 1000] [--scale 1]
//
// Opens <url> in headless Chromium (the Debian package, /usr/bin/chromium, or $CHROMIUM), then
// waits, each step within the overall deadline:
//   1. the page renders snapshots (body[data-snapshots] >= --min-snapshots) and says "live";
//   2. live numbers change between two reads (total processed, events in per second, uptime);
//   3. the recent-decisions table has at least --min-recent rows;
//   4. every chart canvas has something drawn on it;
// and fails on any page error, console error, failed request or request to another origin
// (the page must work offline). Then it saves a full-page screenshot to <screenshot.png> and
// prints what it read as JSON. Exit status 0 on success, 1 on failure, 2 on bad usage.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

function usage(msg) {
  if (msg) console.error(`error: ${msg}`);
  console.error(
    "usage: node check.mjs <url> <screenshot.png> [--timeout-secs N] [--min-snapshots N] " +
      "[--min-recent N] [--width PX] [--height PX] [--scale F]",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const positional = [];
  const opts = {
    timeoutSecs: 90,
    minSnapshots: 3,
    minRecent: 1,
    width: 1600,
    height: 1000,
    scale: 1,
  };
  const names = {
    "--timeout-secs": "timeoutSecs",
    "--min-snapshots": "minSnapshots",
    "--min-recent": "minRecent",
    "--width": "width",
    "--height": "height",
    "--scale": "scale",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") usage();
    if (a.startsWith("--")) {
      const [flag, inline] = a.split("=", 2);
      const key = names[flag];
      if (!key) usage(`unknown option ${flag}`);
      const raw = inline ?? argv[++i];
      const v = Number(raw);
      if (raw === undefined || !Number.isFinite(v) || v < 0) usage(`${flag} needs a number`);
      opts[key] = v;
    } else {
      positional.push(a);
    }
  }
  if (positional.length !== 2) usage("need <url> and <screenshot.png>");
  let url;
  try {
    url = new URL(positional[0]);
  } catch {
    usage(`not a URL: ${positional[0]}`);
  }
  return { url, out: positional[1], ...opts };
}

const args = parseArgs(process.argv.slice(2));
const deadline = Date.now() + args.timeoutSecs * 1000;
const remaining = () => Math.max(1, deadline - Date.now());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const problems = [];
function problem(msg) {
  problems.push(msg);
  console.error(`page problem: ${msg}`);
}

async function readKpis(page) {
  return page.evaluate(() => {
    const t = (id) => {
      const el = document.querySelector(`[data-testid="${id}"]`);
      return el ? el.textContent.trim() : null;
    };
    return {
      snapshots: Number(document.body.dataset.snapshots || 0),
      connection: document.querySelector('[data-testid="connection"]')?.dataset.state ?? null,
      mode: t("mode"),
      model: t("model-version"),
      uptime: t("uptime"),
      eventsPerSec: t("events-per-sec"),
      decisionsPerSec: t("decisions-per-sec"),
      approvePerSec: t("approve-per-sec"),
      reviewPerSec: t("review-per-sec"),
      declinePerSec: t("decline-per-sec"),
      precision: t("precision"),
      recall: t("recall"),
      f1: t("f1"),
      latencyP99: t("latency-p99"),
      totalProcessed: t("total-processed"),
      dlq: t("dlq-count"),
      recentRows: document.querySelectorAll("#recent-decisions tbody tr").length,
      missedItems: document.querySelectorAll("#missed-fraud li").length,
      lagRows: document.querySelectorAll("#lag-bars .lag-row").length,
      scenarioRows: document.querySelectorAll("#scenarios .scenario-row").length,
      brokerRows: document.querySelectorAll("#broker-topics tbody tr.topic-row").length,
    };
  });
}

/** Polls `read` until `ok(value)` holds; throws `what` with the last value at the deadline. */
async function waitFor(what, read, ok, everyMs = 250) {
  let last;
  for (;;) {
    last = await read();
    if (ok(last)) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out waiting for ${what}; last read: ${JSON.stringify(last)}`);
    }
    await sleep(Math.min(everyMs, remaining()));
  }
}

async function main() {
  const userDataDir = mkdtempSync(join(tmpdir(), "veritas-dashboard-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: args.width, height: args.height },
      deviceScaleFactor: args.scale,
      colorScheme: "dark",
      timeout: remaining(),
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(remaining());

    page.on("pageerror", (e) => problem(`uncaught exception: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problem(`console error: ${m.text()}`);
    });
    page.on("requestfailed", (r) => {
      // The endless event stream is cut when the page closes; that is not a failure.
      if (!r.url().endsWith("/events")) problem(`request failed: ${r.url()} (${r.failure()?.errorText})`);
    });
    page.on("request", (r) => {
      const u = new URL(r.url());
      if (u.protocol !== "data:" && u.origin !== args.url.origin) {
        problem(`request to another origin: ${r.url()} (the page must work offline)`);
      }
    });

    const response = await page.goto(args.url.href, { waitUntil: "load", timeout: remaining() });
    if (!response || !response.ok()) {
      throw new Error(`GET ${args.url.href}: ${response ? response.status() : "no response"}`);
    }

    // 1. Snapshots arrive over the live stream.
    await waitFor(
      `${args.minSnapshots} rendered snapshots over a live connection`,
      () => readKpis(page),
      (k) => k.snapshots >= args.minSnapshots && k.connection === "live",
    );

    // 2. Live numbers change between two reads.
    const first = await readKpis(page);
    const second = await waitFor(
      "live numbers to change",
      () => readKpis(page),
      (k) =>
        k.snapshots > first.snapshots &&
        (k.totalProcessed !== first.totalProcessed || k.eventsPerSec !== first.eventsPerSec) &&
        k.uptime !== first.uptime,
    );

    // 3. Decisions to show.
    const withRows = await waitFor(
      `at least ${args.minRecent} row(s) in the recent-decisions table`,
      () => readKpis(page),
      (k) => k.recentRows >= args.minRecent,
    );

    // 4. Charts are drawn (some non-transparent pixels inside the plot area).
    const drawn = await waitFor(
      "every chart to be drawn",
      () =>
        page.evaluate(() =>
          [...document.querySelectorAll("canvas")].map((c) => {
            const ctx = c.getContext("2d");
            if (!c.width || !c.height) return { id: c.id, pixels: 0 };
            const data = ctx.getImageData(0, 0, c.width, c.height).data;
            let pixels = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) pixels++;
            return { id: c.id, pixels, of: c.width * c.height };
          }),
        ),
      (charts) => charts.length >= 3 && charts.every((c) => c.pixels > 500),
    );

    // Let the latest snapshot paint, then take the picture.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    await page.screenshot({ path: args.out, fullPage: true, timeout: remaining() });

    if (problems.length) throw new Error(`${problems.length} page problem(s): ${problems.join("; ")}`);
    console.log(
      JSON.stringify(
        { ok: true, url: args.url.href, screenshot: args.out, first, second, final: withRows, charts: drawn },
        null,
        2,
      ),
    );
    return 0;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`dashboard check FAILED: ${e.message}`);
    process.exit(1);
  },
);
