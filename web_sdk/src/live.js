// @ts-check
// Live updates (full build): a mount's layout kept up to date over server-sent events,
// reconnecting with backoff (1 s, doubling to 30 s, with jitter; not after a 4xx but 429).
import { rememberLayout } from "./cache.js";
import { config } from "./config.js";
import { fail, wait } from "./guards.js";
import { layoutPath, request } from "./http.js";
import { mounts } from "./mounts.js";
import { paint } from "./render.js";

/** @import { Mount } from "./mounts.js" */

/** @param {Mount} mount */
export async function keepUpToDate(mount) {
  if (mount.stream) mount.stream.abort();
  const stream = mount.stream = new AbortController();
  const configAtStart = config;
  let delay = 1000;
  while (!stream.signal.aborted && mounts.get(mount.el) === mount) {
    try {
      const response = await request(configAtStart, layoutPath(configAtStart, mount, "/stream"), { headers: { Accept: "text/event-stream" }, signal: stream.signal });
      const reader = /** @type {ReadableStream<Uint8Array>} */ (response.body).getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer = (buffer + decoder.decode(chunk.value, { stream: true })).replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          receive(mount, buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          delay = 1000;
        }
      }
    } catch (/** @type {any} */ error) {
      if (stream.signal.aborted) return;
      fail(error);
      if (error.status >= 400 && error.status < 500 && error.status !== 429) return; // will not get better
    }
    await wait(delay * (1 + Math.random() / 2));
    delay = Math.min(delay * 2, 30000);
  }
}

/** One server-sent event: a "layout" event carries a descriptor. @param {Mount} mount @param {string} block */
function receive(mount, block) {
  let name = "message";
  /** @type {string[]} */
  const data = [];
  block.split("\n").forEach((line) => {
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  });
  if (name !== "layout" || !data.length) return;
  try {
    const descriptor = JSON.parse(data.join("\n"));
    mount.requests++; // answers to requests made before are stale now
    paint(mount, descriptor, "server");
    rememberLayout(mount, descriptor);
  } catch (error) {
    fail(error);
  }
}
