// @ts-check
// The device's store: localStorage when the browser allows it, memory otherwise.
import { text } from "./guards.js";

/** @import { Config } from "./config.js" */

/** @type {Record<string, string>} */
const memory = Object.create(null); // stands in for localStorage when the browser refuses it

/** @param {string} key @returns {string | null} */
export function read(key) {
  try {
    const value = localStorage.getItem(key);
    if (value != null) return value;
  } catch { /* disabled */ }
  return key in memory ? memory[key] : null;
}

/** @param {string} key @param {string} value */
export function write(key, value) {
  memory[key] = value;
  try {
    localStorage.setItem(key, value);
  } catch {
    // Full: cached layouts come back from the server, so make room by dropping them once.
    try {
      for (let i = localStorage.length; i--;) {
        const other = localStorage.key(i);
        if (other && other.indexOf("cairn:l:") === 0 && other !== key) localStorage.removeItem(other);
      }
      localStorage.setItem(key, value);
    } catch { /* memory only */ }
  }
}

/** @param {string} key */
export function forget(key) {
  delete memory[key];
  try {
    localStorage.removeItem(key);
  } catch { /* disabled */ }
}

/** What `key` holds as JSON, or null (a corrupted entry is dropped). @param {string} key @returns {any} */
export function readJSON(key) {
  try {
    return JSON.parse(/** @type {string} */ (read(key)));
  } catch {
    forget(key);
    return null;
  }
}

/**
 * The key of what is kept for the configured user: "q" the event queue, "p" the personalization
 * level, "x" the dismissals kept on the device; per screen, "v" the chosen view, and per screen and
 * view, "l" the cached layout.
 * @param {"q" | "p" | "x" | "v" | "l"} kind
 * @param {Config} config
 * @param {{screen: string, view?: string | null}} [mount]
 */
export const storageKey = (kind, config, mount) =>
  "cairn:" + kind + ":" + config.tenantId + ":" + config.userId +
  (mount ? ":" + mount.screen + (kind === "l" ? ":" + text(mount.view) : "") : "");
