// @ts-check
// The last layout rendered per user, screen and view, kept on the device and shown at once the next
// time (unless init({cache: false})). Only what rendered is kept: nothing bad enters the cache.
import { config } from "./config.js";
import { forget, readJSON, storageKey, write } from "./storage.js";

/** @import { Mount } from "./mounts.js" */

/** @param {Mount} mount @returns {unknown} */
export const cachedLayout = (mount) => (config.cache === false ? null : readJSON(storageKey("l", config, mount)));

/** @param {Mount} mount @param {unknown} descriptor */
export function rememberLayout(mount, descriptor) {
  if (config.cache !== false) write(storageKey("l", config, mount), JSON.stringify(descriptor));
}

/** @param {Mount} mount */
export const forgetLayout = (mount) => forget(storageKey("l", config, mount));
