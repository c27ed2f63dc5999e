// Builds the web SDK with esbuild and prints its gzip size beside two peers built the same way.
//
//   node build.mjs          write dist/cairn.min.js (full), dist/cairn.core.min.js (core),
//                           dist/cairn.preferences.min.js (the preference center, loaded after
//                           either), dist/cairn.css (the default stylesheet and the preference
//                           center's, for the core build or a CSP) and dist/admin/metrics.js (the
//                           admin dashboards' charts)
//   node build.mjs --check  rebuild in memory: fail if dist/ differs or the core is over budget
//
// Both builds bundle the ES modules of src/ from src/index.js into one minified classic script (an
// IIFE) that defines window.Cairn. The full build is what Cairn serves. The core build leaves out
// the statements labelled FULL in src/index.js (live updates, the default stylesheet, the
// preference setter) and so the modules only they use: fetch, cache, render and events. The
// preference center is a third classic script, from src/preferences-center.js, that adds
// Cairn.preferences to the SDK loaded before it.
//
// The screen rule of the published JSON Schema (widgets/layout.schema.json,
// "x-cairn-once-per-screen": widget type → group, one widget of each group per screen) is put into
// the bundles as CAIRN_ONCE_PER_SCREEN, so a changed rule makes the committed dist stale.
//
// Each file starts with a comment naming the start of the SHA-256 of what it is built from: every
// src/*.js in name order (name, NUL, content, NUL), then the rule as compact JSON. A check without
// Node.js can so still tell a stale build (e2e/test_sdk_bundle.py computes the same).
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(here, "src");
const ENTRY = join(SOURCE, "index.js");
const PREFERENCES_ENTRY = join(SOURCE, "preferences-center.js");
const PREFERENCES_STYLE = join(SOURCE, "preferences-style.js");
const SCHEMA = join(here, "..", "widgets", "layout.schema.json");
const DIST = join(here, "dist");
const ADMIN_ENTRY = join(here, "admin", "metrics.js");
const CORE_BUDGET = 6 * 1024; // bytes, gzip -9
const TARGET = "es2017";

const gzip = (bytes) => gzipSync(bytes, { level: 9 }).length;
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

const ONCE_PER_SCREEN = JSON.parse(readFileSync(SCHEMA, "utf8"))["x-cairn-once-per-screen"];
if (!ONCE_PER_SCREEN || typeof ONCE_PER_SCREEN !== "object" || Array.isArray(ONCE_PER_SCREEN) ||
    !Object.values(ONCE_PER_SCREEN).every((group) => typeof group === "string")) {
  console.error("widgets/layout.schema.json has no x-cairn-once-per-screen map of widget type to group");
  process.exit(1);
}

function sourceHash() {
  const hash = createHash("sha256");
  for (const name of readdirSync(SOURCE).filter((name) => name.endsWith(".js")).sort()) {
    hash.update(name + "\0");
    hash.update(readFileSync(join(SOURCE, name)));
    hash.update("\0");
  }
  hash.update(JSON.stringify(ONCE_PER_SCREEN));
  return hash.digest("hex").slice(0, 16);
}
const BANNER = `/* cairn.js sha256:${sourceHash()} */`;

async function minify(dropLabels, entry = ENTRY) {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: "iife",
    platform: "browser",
    minify: true,
    target: TARGET,
    dropLabels,
    define: { CAIRN_ONCE_PER_SCREEN: JSON.stringify(ONCE_PER_SCREEN) },
    banner: { js: BANNER },
    write: false,
    logLevel: "error",
  });
  return Buffer.from(out.outputFiles[0].contents);
}

// The admin dashboards' charts: admin/metrics.js with Observable Plot, one classic script that
// Cairn serves itself at /admin/assets/metrics.js (no CDN: nothing loaded from elsewhere).
async function adminBundle() {
  const out = await build({
    entryPoints: [ADMIN_ENTRY],
    bundle: true,
    format: "iife",
    platform: "browser",
    minify: true,
    target: "es2020",
    legalComments: "eof",
    write: false,
    logLevel: "error",
  });
  return Buffer.from(out.outputFiles[0].contents);
}

// A peer, bundled with its dependencies into one minified script, as a page would load it.
async function peer(pkg) {
  const out = await build({
    stdin: { contents: `export * from ${JSON.stringify(pkg)};`, resolveDir: here },
    bundle: true,
    minify: true,
    format: "iife",
    globalName: "peer",
    target: TARGET,
    platform: "browser",
    write: false,
    logLevel: "error",
  });
  return Buffer.from(out.outputFiles[0].contents);
}

// The preference center's stylesheet (src/preferences-style.js), read by running that module.
async function preferencesStylesheet() {
  const out = await build({
    entryPoints: [PREFERENCES_STYLE],
    bundle: true,
    format: "iife",
    globalName: "style",
    target: TARGET,
    write: false,
    logLevel: "error",
  });
  const context = {};
  runInNewContext(out.outputFiles[0].text + ";this.css = style.PREFERENCES_CSS;", context);
  return context.css;
}

// The stylesheet the full build injects, captured by running it against a stub document, then the
// preference center's.
async function stylesheet(full) {
  const style = {};
  const document = {
    getElementById: () => null,
    createElement: () => style,
    head: { append() {} },
    addEventListener() {},
  };
  const window = { document, addEventListener() {} };
  runInNewContext(full.toString("utf8"), { window, document, setTimeout, console });
  window.Cairn.init({ key: "k", tenantId: "t", userId: "u" });
  const rules = (css) => css.replace(/}(?=[.@]|$)/g, "}\n");
  return Buffer.from(`${BANNER}\n` +
    "/* The web SDK's default stylesheet, for the core build or init({css: false}) */\n" +
    rules(style.textContent) +
    "/* The preference center's (cairn.preferences.js) */\n" +
    rules(await preferencesStylesheet()));
}

const full = await minify([]);
const builds = {
  "cairn.min.js": full,
  "cairn.core.min.js": await minify(["FULL"]),
  "cairn.preferences.min.js": await minify([], PREFERENCES_ENTRY),
  "cairn.css": await stylesheet(full),
  "admin/metrics.js": await adminBundle(),
};
const check = process.argv.includes("--check");
let failed = false;

if (check) {
  for (const [name, bytes] of Object.entries(builds)) {
    const path = join(DIST, name);
    if (!existsSync(path) || !readFileSync(path).equals(bytes)) {
      console.error(`web_sdk/dist/${name} does not match a fresh build of src/ and the schema's rule: run \`make sdk\``);
      failed = true;
    }
  }
} else {
  mkdirSync(join(DIST, "admin"), { recursive: true });
  for (const [name, bytes] of Object.entries(builds)) writeFileSync(join(DIST, name), bytes);
}

const core = gzip(builds["cairn.core.min.js"]);
const rows = [
  ["Cairn core (fetch, cache, render, events)", builds["cairn.core.min.js"]],
  ["Cairn full (+ live updates, stylesheet, preferences)", builds["cairn.min.js"]],
  ["Cairn preference center (after core or full)", builds["cairn.preferences.min.js"]],
  ["Admin dashboards' charts (Observable Plot)", builds["admin/metrics.js"]],
];
if (!check) {
  for (const pkg of ["unleash-proxy-client", "@growthbook/growthbook"]) {
    const version = JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"), "utf8")).version;
    rows.push([`${pkg} ${version}`, await peer(pkg)]);
  }
}
console.log(`${"esbuild --minify, " + TARGET}`.padEnd(56) + "minified".padStart(10) + "gzip -9".padStart(10));
for (const [label, bytes] of rows) {
  console.log(label.padEnd(56) + String(bytes.length).padStart(10) + String(gzip(bytes)).padStart(10));
}
if (core > CORE_BUDGET) {
  console.error(`the core build is ${core} bytes gzip, over its budget of ${CORE_BUDGET}`);
  failed = true;
}
process.exit(failed ? 1 : 0);
