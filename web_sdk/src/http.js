// @ts-check
// Requests to Cairn, with the publishable key, the user hash and what this client renders.
import { SCHEMA_VERSION, VERSION } from "./config.js";
import { text } from "./guards.js";
import { renderers } from "./widgets.js";

/** @import { Config } from "./config.js" */
/** @import { CairnError } from "./cairn" */

const encode = encodeURIComponent;

/** @param {Config} config @param {HeadersInit} [extra] */
function headers(config, extra) {
  const types = Object.keys(renderers).filter((type) => /^[\w.-]+$/.test(type));
  return Object.assign({
    Authorization: "Bearer " + config.key,
    "X-Cairn-User-Hash": text(config.userHash),
    "X-Cairn-Client": "web/" + (config.clientVersion || VERSION) + "; schema=" + SCHEMA_VERSION + "; widgets=" + types,
  }, extra);
}

/** @param {Config} config */
export const userQuery = (config) => "?tenant_id=" + encode(config.tenantId) + "&user_id=" + encode(config.userId);

/**
 * The layout of a mount's screen and view, or with suffix "/stream" its server-sent event stream.
 * @param {Config} config @param {{screen: string, view?: string | null}} mount @param {string} [suffix]
 */
export const layoutPath = (config, mount, suffix = "") =>
  "/v1/layouts/" + encode(mount.screen) + suffix + userQuery(config) + (mount.view ? "&view=" + encode(mount.view) : "");

/**
 * Resolves with an ok response; rejects with a CairnError (status, and Cairn's code, field and
 * message when the body has them) or a network error.
 * @param {Config} config @param {string} path @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
export function request(config, path, init) {
  return fetch(config.host + path, Object.assign({ cache: "no-store" }, init, { headers: headers(config, init && init.headers) }))
    .then((response) => {
      if (response.ok) return response;
      const error = /** @type {CairnError} */ (new Error("Cairn responded " + response.status));
      error.status = response.status;
      return response.json().then((body) => {
        error.code = body.error.code;
        error.field = body.error.field;
        error.message = body.error.message || error.message;
      }).catch(() => { /* not a JSON error body */ }).then(() => { throw error; });
    });
}
