// @ts-check
// Mounts, one per element Cairn renders into, and their loading: the cached layout at once, then
// Cairn's; a bundled default when there is neither in time. With render(…, {live: true}), the
// full build keeps it up to date (statements labelled FULL: see index.js).
import { cachedLayout, forgetLayout, rememberLayout } from "./cache.js";
import { config } from "./config.js";
import { widgetEvent } from "./events.js";
import { fail, guard, text, wait } from "./guards.js";
import { layoutPath, request } from "./http.js";
import { keepUpToDate } from "./live.js";
import { paint } from "./render.js";
import { read, storageKey, write } from "./storage.js";

/** @import { LayoutDescriptor, RenderOptions } from "./cairn" */

/**
 * @typedef {object} Mount  an element Cairn renders a screen into
 * @property {Element} el
 * @property {string} screen
 * @property {RenderOptions} options  as given to render (none for renderDescriptor)
 * @property {number} headingLevel  of widget titles, 2 to 6
 * @property {number} requests  layout requests made: only the answer to the latest is shown
 * @property {Set<string>} viewed  "<decision id>\n<widget id>" of the widget_viewed sent
 * @property {Set<string>} openWhy  the widgets whose "Why this?" panel is open
 * @property {Set<string>} dismissed  the widgets dismissed on this page
 * @property {Map<Element, number>} viewTimers  a second on screen, then widget_viewed
 * @property {string | null} [view]  the view asked for
 * @property {LayoutDescriptor | null} [descriptor]  on screen
 * @property {string | null} [signature]  of what is on screen (its content, not its decision id)
 * @property {Set<string | null>} [shownIds]  the widgets on screen: others are new and fade in
 * @property {IntersectionObserver} [observer]  of the widgets on screen
 * @property {AbortController} [stream]  of the live updates
 * @property {number} [refreshTimer]
 */

/** @type {Map<Element, Mount>} */
export const mounts = new Map();

/**
 * The mount of an element (or CSS selector) for a screen: a new one when the element showed
 * another screen.
 * @param {Element | string} element @param {unknown} screen @param {{headingLevel?: number}} options
 */
export function mountFor(element, screen, options) {
  const el = typeof element === "string" ? document.querySelector(element) : element;
  if (!el || !el.nodeType) throw new Error("Cairn needs an element to render into");
  let mount = mounts.get(el);
  if (!mount || mount.screen !== text(screen)) {
    if (mount) unmount(el);
    mount = /** @type {Mount} */ ({
      el,
      screen: text(screen),
      requests: 0,
      viewed: new Set(),
      openWhy: new Set(),
      dismissed: new Set(),
      viewTimers: new Map(),
    });
    mounts.set(el, mount);
    el.addEventListener("click", onClick);
  }
  mount.headingLevel = Math.min(Math.max(Number(options.headingLevel) || 2, 2), 6);
  return mount;
}

export const unmount = guard((/** @type {Element} */ element) => {
  const mount = mounts.get(element);
  if (!mount) return;
  mounts.delete(element);
  FULL: if (mount.stream) mount.stream.abort();
  if (mount.observer) mount.observer.disconnect();
  mount.viewTimers.forEach(clearTimeout);
  clearTimeout(mount.refreshTimer);
  element.removeEventListener("click", onClick);
  element.textContent = "";
});

// widget_clicked for any link (or element marked data-cairn-cta) inside a widget.
const onClick = guard((/** @type {any} */ event) => {
  const mount = /** @type {Mount} */ (mounts.get(event.currentTarget));
  const link = mount && event.target.closest && event.target.closest("a[href],[data-cairn-cta]");
  const box = link && link.closest("[data-widget-id]");
  if (!box || !mount.el.contains(box) || !mount.descriptor) return;
  widgetEvent(mount, "widget_clicked", box, { item: link.getAttribute("data-cairn-item") || undefined })
    .then(() => refresh(mount));
});

/**
 * Shows the mount's screen: the cached layout at once, Cairn's when it answers; the bundled default
 * when there is neither within the timeout. Resolves with the descriptor on screen, or null.
 * @param {Mount} mount @returns {Promise<LayoutDescriptor | null>}
 */
export function load(mount) {
  // A remembered view that is no longer offered gets the user's default view from Cairn.
  mount.view = mount.options.view || read(storageKey("v", config, mount));
  if (!mount.descriptor) {
    const cached = cachedLayout(mount);
    try {
      if (cached) paint(mount, cached, "cache");
    } catch {
      forgetLayout(mount);
    }
  }
  const done = fetchLayout(mount);
  FULL: if (mount.options.live) keepUpToDate(mount).catch(fail);
  else if (mount.stream) mount.stream.abort();
  const timeout = config.timeout == null ? 3000 : Number(config.timeout);
  return Promise.race([done, wait(timeout).then(() => showDefault(mount))]);
}

/** The bundled default of the mount's screen, when nothing is on screen yet. @param {Mount} mount */
function showDefault(mount) {
  const layout = config && config.defaults && config.defaults[mount.screen];
  if (!mount.descriptor && mounts.get(mount.el) === mount && layout) {
    try {
      paint(mount, layout, "default");
    } catch (error) {
      fail(error);
    }
  }
  return mount.descriptor || null;
}

/** Asks Cairn for the mount's layout and shows it, unless a later request or user came first. @param {Mount} mount */
export function fetchLayout(mount) {
  const number = ++mount.requests;
  const configAtStart = config;
  return request(configAtStart, layoutPath(configAtStart, mount))
    .then((response) => response.json())
    .then((descriptor) => {
      if (number !== mount.requests || mounts.get(mount.el) !== mount || storageKey("q", configAtStart) !== storageKey("q", config)) return; // stale
      paint(mount, descriptor, "server");
      rememberLayout(mount, descriptor);
    })
    .catch((error) => {
      fail(error);
      showDefault(mount);
    })
    .then(() => mount.descriptor || null);
}

/** The layout again soon, after what the user did may have changed it. @param {Mount} mount */
export function refresh(mount) {
  clearTimeout(mount.refreshTimer);
  // A layout the host rendered itself (renderDescriptor before init) has nobody to ask.
  if (config) mount.refreshTimer = setTimeout(guard(() => fetchLayout(mount)), 150);
}

/** The user chose another view: remembered per user and screen. @param {Mount} mount @param {string} id */
export function setView(mount, id) {
  mount.view = id;
  write(storageKey("v", config, mount), id);
  const cached = cachedLayout(mount);
  try {
    if (cached) paint(mount, cached, "cache");
  } catch { /* the server answers soon */ }
  fetchLayout(mount);
  FULL: if (mount.options.live) keepUpToDate(mount).catch(fail);
}
