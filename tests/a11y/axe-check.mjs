// Accessibility check of one HTML file: axe-core's WCAG 2.0/2.1 level A and AA rules, run in the
// system's headless Chromium (no browser download: CHROMIUM or /usr/bin/chromium).
//
//   node tests/a11y/axe-check.mjs FILE.html [--tags best-practice,...] [--screenshot OUT.png]
//
// --tags adds axe rule tags to the WCAG ones (e.g. best-practice); --screenshot saves a full-page
// PNG of the page as axe saw it.
// Prints JSON {url, tags, violations: [{id, impact, help, helpUrl, nodes: [{target, html,
// summary}]}], passes, incomplete} on stdout and exits 0 when there are no violations, 1 when
// there are, 2 on a usage or browser error. Used by tests/test_accessibility.py.
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
// Our network is closed: without the background-networking flags Chromium waits on refused
// connections. A fresh profile keeps runs independent.
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const args = process.argv.slice(2);
const option = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args.splice(at, 2)[1] : null;
};
const screenshot = option("--screenshot");
const extraTags = option("--tags");
const TAGS = [...WCAG, ...(extraTags ? extraTags.split(",") : [])];
if (args.length !== 1) {
  console.error("usage: node axe-check.mjs FILE.html [--tags best-practice,...] [--screenshot OUT.png]");
  process.exit(2);
}
const url = pathToFileURL(resolve(args[0])).href;
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const profile = mkdtempSync(join(tmpdir(), "axe-chromium-"));

let context;
let status = 2;
try {
  // Playwright passes the profile as --user-data-dir itself (a persistent context).
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  const page = context.pages()[0] || await context.newPage();
  await page.goto(url, { waitUntil: "load", timeout: 60_000 });
  await page.addScriptTag({ content: axeSource });
  const results = await page.evaluate(async (tags) => {
    // eslint-disable-next-line no-undef
    return await axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
  }, TAGS);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  const violations = results.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({ target: n.target, html: n.html.slice(0, 300), summary: n.failureSummary })),
  }));
  console.log(JSON.stringify({
    url, tags: TAGS, axe: results.testEngine.version, violations,
    passes: results.passes.length, incomplete: results.incomplete.map((i) => i.id),
  }, null, 2));
  status = violations.length ? 1 : 0;
} catch (err) {
  console.error(`axe-check: ${err && err.stack ? err.stack : err}`);
  status = 2;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(status);
