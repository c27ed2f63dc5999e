// @ts-check
// Nothing may throw into the host page: errors go to the host's onError, notes to the console.
// Values from the server are coerced where they are read, never trusted.
import { config } from "./config.js";

/** @import { CairnError } from "./cairn" */

/** @param {unknown} error */
export function fail(error) {
  try {
    if (config && typeof config.onError === "function") config.onError(/** @type {CairnError} */ (error));
  } catch { /* a host callback must not break rendering */ }
}

/** @param {string} message @param {unknown} [detail] */
export function warn(message, detail) {
  try {
    console.warn("Cairn: " + message, detail || "");
  } catch { /* no console */ }
}

/**
 * `fn`, with what it throws reported to onError instead.
 * @template {unknown[]} A
 * @template R
 * @param {(this: any, ...args: A) => R} fn
 * @returns {(...args: A) => R | undefined}
 */
export function guard(fn) {
  return /** @this {unknown} */ function (...args) {
    try {
      return fn.apply(this, args);
    } catch (error) {
      fail(error);
    }
  };
}

/** What a public call that has nothing to wait for returns. @returns {Promise<any>} */
export const resolved = () => Promise.resolve(null);

/**
 * `fn` for a public call that returns a promise: what it throws goes to onError, and the call
 * resolves all the same.
 * @template {unknown[]} A
 * @template R
 * @param {(...args: A) => Promise<R>} fn
 * @returns {(...args: A) => Promise<R>}
 */
export const guardAsync = (fn) => (...args) => {
  try {
    return fn(...args);
  } catch (error) {
    fail(error);
    return resolved();
  }
};

/** @param {number} ms @returns {Promise<void>} */
export const wait = (ms) => new Promise((done) => setTimeout(done, ms));

/** @param {unknown} value */
export const text = (value) => (value == null ? "" : String(value));

/** @param {unknown} value @returns {any[]} */
export const list = (value) => (Array.isArray(value) ? value : []);
