// @ts-check
// The user's personalization preference, changed from the page (full build): queued events it
// does not allow are dropped at once, and the layouts on screen are fetched again.
import { config } from "./config.js";
import { LEVELS, allowed, currentQueue, saveQueue } from "./events.js";
import { fail } from "./guards.js";
import { request, userQuery } from "./http.js";
import { fetchLayout, mounts } from "./mounts.js";

/** @import { Personalization } from "./cairn" */

/** Cairn.setPersonalization, unguarded. @param {Personalization} level */
export function setPersonalization(level) {
  if (!LEVELS.test(level)) throw new Error("personalization is full, basic or off");
  const queue = currentQueue;
  const userConfig = config;
  const path = "/v1/preferences" + userQuery(userConfig);
  queue.level = level;
  queue.items = queue.items.filter((item) => allowed(queue, item));
  saveQueue(queue);
  return request(userConfig, path).then((response) => response.json()).then((preferences) => {
    preferences.personalization = level;
    return request(userConfig, path, { method: "PUT", body: JSON.stringify(preferences), headers: { "Content-Type": "application/json" } });
  }).then(() => {
    mounts.forEach((mount) => {
      if (mount.requests) fetchLayout(mount);
    });
  }).catch(fail);
}
