// @ts-check
// Dismissals Cairn is not told of (personalization off, or not known yet) are kept on the device
// for a day.
import { config } from "./config.js";
import { currentQueue } from "./events.js";
import { read, readJSON, storageKey, write } from "./storage.js";

const DISMISS_TTL = 864e5; // one day

/** @param {string} id */
export const dismissedOnDevice = (id) =>
  !!config && (currentQueue.level || read(storageKey("p", config))) === "off" &&
  (readJSON(storageKey("x", config)) || {})[id] > Date.now() - DISMISS_TTL;

/** @param {string} id */
export function keepDismissal(id) {
  if (currentQueue && !/full|basic/.test(/** @type {string} */ (currentQueue.level))) { // off, or not known yet
    const dismissals = readJSON(storageKey("x", config)) || {};
    dismissals[id] = Date.now();
    write(storageKey("x", config), JSON.stringify(dismissals));
  }
}
