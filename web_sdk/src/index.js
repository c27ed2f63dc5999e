// @ts-check
// Cairn web SDK: renders Cairn layout descriptors (schema version 1) and reports what users do with
// them. This entry assembles window.Cairn for both builds.
//
// The statements labelled FULL (here and in mounts.js) are only in the full build, the one Cairn
// serves. The core build (esbuild dropLabels) leaves them out, and with them the modules only they
// use: live updates (live.js), the default stylesheet (styles.js) and the preference setter
// (preferences.js).
import { VERSION, config, configure } from "./config.js";
import { findWidget } from "./dom.js";
import { allowed, currentQueue, enqueue, flush, message, saveQueue, sendBeforeHiding, useQueueOf, widgetEvent } from "./events.js";
import { fail, guard, guardAsync, resolved, text } from "./guards.js";
import { request } from "./http.js";
import { fetchLayout, load, mountFor, mounts, unmount } from "./mounts.js";
import { setPersonalization } from "./preferences.js";
import { paint } from "./render.js";
import { addDefaultStylesheet } from "./styles.js";
import { renderers } from "./widgets.js";

/** @import { CairnSDK } from "./cairn" */
/** @import { Config } from "./config.js" */

/**
 * @typedef {() => [Config, typeof request, typeof currentQueue, typeof allowed, typeof saveQueue, typeof mounts, typeof fetchLayout]} PreferencesHook
 *   Cairn._prefs: what the preference center (preferences-center.js, a bundle of its own) uses of
 *   the SDK loaded before it: the configuration (null before init) and requests with its
 *   credentials; the event queue, what a level allows and the queue's storage; and the mounts and
 *   their fetch. Only the names the core bundle keeps anyway, so that its size hardly changes.
 */

/** @type {CairnSDK & {_prefs: PreferencesHook}} */
const api = {
  version: VERSION,

  init: guard((options) => {
    options = options || {};
    if (!options.key || !options.tenantId || !options.userId) throw new Error("Cairn.init needs key, tenantId and userId");
    const previous = config;
    configure(Object.assign({}, options, { host: text(options.host).replace(/\/+$/, ""), tenantId: text(options.tenantId), userId: text(options.userId) }));
    useQueueOf(config);
    FULL: addDefaultStylesheet();
    if (previous && (previous.tenantId !== config.tenantId || previous.userId !== config.userId)) {
      // Another user: nothing of the previous user's layouts stays on screen.
      mounts.forEach((mount) => {
        mount.descriptor = mount.signature = null;
        mount.el.textContent = "";
        mount.viewed.clear();
        mount.dismissed.clear();
        load(mount);
      });
    }
  }),

  render: guardAsync((screen, element, options) => {
    if (!config) throw new Error("Cairn.render called before Cairn.init");
    const mount = mountFor(element, screen, options || {});
    mount.options = options || {};
    return load(mount);
  }),

  renderDescriptor: guard((element, descriptor, options) => {
    options = options || {};
    const mount = mountFor(element, descriptor && descriptor.screen, options);
    mount.options = {};
    mount.view = descriptor && descriptor.view && descriptor.view.id;
    FULL: addDefaultStylesheet();
    paint(mount, descriptor, options.preview ? "preview" : "host");
  }),

  unmount,

  registerRenderer: guard((type, renderer) => {
    if (typeof renderer === "function") renderers[type] = renderer;
    else delete renderers[type];
    mounts.forEach((mount) => { mount.signature = null; }); // repaint with the new renderer next time
  }),

  track: guardAsync((event, properties) => enqueue(message({ type: "track", event: text(event), properties: properties || {} }))),

  // identify(traits) for the current user, or identify(userId, traits, {userHash}) to switch user.
  identify: guardAsync(/** @param {any} userId @param {any} [traits] @param {any} [options] */ (userId, traits, options) => {
    if (userId && typeof userId === "object") return /** @type {any} */ (api).identify(null, userId);
    if (userId != null && text(userId) !== config.userId) {
      api.init(Object.assign({}, config, { userId, userHash: (options || {}).userHash }));
    }
    return enqueue(message({ type: "identify", traits: traits || {} }));
  }),

  complete: guardAsync((widgetId, properties) => {
    let done = resolved();
    mounts.forEach((mount) => {
      const el = findWidget(mount.el, text(widgetId));
      if (el && mount.descriptor) done = widgetEvent(mount, "widget_completed", el, properties);
    });
    return done;
  }),

  flush: () => flush(currentQueue).catch(fail),

  // For the preference center (cairn.preferences.js, loaded after either build), not a public API.
  _prefs: () => [config, request, currentQueue, allowed, saveQueue, mounts, fetchLayout],
};

FULL: api.setPersonalization = guardAsync(setPersonalization);

if (!window.Cairn || !window.Cairn.render) { // loaded twice: the first copy stays in charge
  // Queued events go on page hide, again once the page is shown, and when the browser is back online.
  window.addEventListener("pagehide", guard(sendBeforeHiding));
  document.addEventListener("visibilitychange", guard(() => {
    if (document.visibilityState === "hidden") sendBeforeHiding();
    else if (currentQueue && currentQueue.beaconed.size) { // shown again: what went by beacon, now with a receipt
      currentQueue.beaconed.clear();
      flush(currentQueue);
    }
  }));
  window.addEventListener("online", () => {
    if (currentQueue) {
      currentQueue.delay = 0;
      flush(currentQueue);
    }
  });
  window.Cairn = api;
}
