// Builds the web SDK with esbuild and prints its gzip size beside two peers built the same way.
//
//   node build.mjs          write dist/cairn.min.js (full), dist/cairn.core.min.js (core) and
//                           dist/cairn.css (the default stylesheet, for the core build or a CSP)
//   node build.mjs --check  rebuild in memory: fail if dist/ differs or the core is over budget
//
// The full build is src/cairn.js minified: what Cairn serves. The core build leaves out the
// statements labelled FULL (live updates, the default stylesheet, the preference setter): fetch,
// cache, render and events. Each file starts with a comment naming the start of the SHA-256 of
// src/cairn.js, so a check without Node.js can still tell a stale build (e2e/test_sdk_bundle.py).
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(here, "src", "cairn.js");
const DIST = join(here, "dist");
const CORE_BUDGET = 6 * 1024; // bytes, gzip -9
const TARGET = "es2017";

const gzip = (bytes) => gzipSync(bytes, { level: 9 }).length;
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

async function minify(dropLabels) {
  const source = readFileSync(SOURCE);
  const out = await build({
    entryPoints: [SOURCE],
    bundle: false,
    minify: true,
    target: TARGET,
    dropLabels,
    banner: { js: `/* cairn.js sha256:${sha256(source).slice(0, 16)} */` },
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

// The stylesheet the full build injects, captured by running the SDK against a stub document.
function stylesheet() {
  const style = {};
  const document = {
    getElementById: () => null,
    createElement: () => style,
    head: { append() {} },
    addEventListener() {},
  };
  const window = { document, addEventListener() {} };
  runInNewContext(readFileSync(SOURCE, "utf8"), { window, document, setTimeout, console });
  window.Cairn.init({ key: "k", tenantId: "t", userId: "u" });
  const hash = sha256(readFileSync(SOURCE)).slice(0, 16);
  return Buffer.from(`/* cairn.js sha256:${hash} */\n` +
    "/* The web SDK's default stylesheet, for the core build or init({css: false}) */\n" +
    style.textContent.replace(/}(?=[.@]|$)/g, "}\n"));
}

const builds = {
  "cairn.min.js": await minify([]),
  "cairn.core.min.js": await minify(["FULL"]),
  "cairn.css": stylesheet(),
};
const check = process.argv.includes("--check");
let failed = false;

if (check) {
  for (const [name, bytes] of Object.entries(builds)) {
    const path = join(DIST, name);
    if (!existsSync(path) || !readFileSync(path).equals(bytes)) {
      console.error(`web_sdk/dist/${name} does not match a fresh build of src/cairn.js: run \`make sdk\``);
      failed = true;
    }
  }
} else {
  mkdirSync(DIST, { recursive: true });
  for (const [name, bytes] of Object.entries(builds)) writeFileSync(join(DIST, name), bytes);
}

const core = gzip(builds["cairn.core.min.js"]);
const rows = [
  ["Cairn core (fetch, cache, render, events)", builds["cairn.core.min.js"]],
  ["Cairn full (+ live updates, stylesheet, preferences)", builds["cairn.min.js"]],
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
