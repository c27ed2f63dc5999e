// @ts-check
// Events: Segment-spec calls, batched, kept on the device until the server has them.
import { config } from "./config.js";
import { fail, list, resolved, text } from "./guards.js";
import { request, userQuery } from "./http.js";
import { readJSON, storageKey, write } from "./storage.js";

/** @import { Config } from "./config.js" */
/** @import { Personalization } from "./cairn" */
/** @import { Mount } from "./mounts.js" */

/** @typedef {Record<string, any> & {messageId: string}} Message  a Segment call */

/**
 * @typedef {object} Queue  the events of one user, also kept in storage
 * @property {Config} config  whose credentials send them
 * @property {string} key  its storage key
 * @property {Message[]} items
 * @property {Personalization | null} level  null until known: nothing leaves before
 * @property {number} delay  the backoff of the last retry, in ms
 * @property {Set<Message>} beaconed  sent on page hide (a beacon has no receipt): still queued, not
 *   sent again until the page is shown again; the next page sends everything queued
 * @property {number} [timer]  the next send
 * @property {Promise<void> | null} [sending]
 * @property {Message[] | null} [inFlight]  the batch being posted
 */

export const LEVELS = /^(full|basic|off)$/;
const BASIC = /^(identify|widget_dismissed|widget_completed)$/;
const MAX_QUEUE = 200; // events kept for sending; the oldest go first when more pile up offline
const BATCH = 100;

/**
 * The current user's queue; null before init. Whatever reads it without checking runs after init.
 * @type {Queue}
 */
export let currentQueue = /** @type {any} */ (null);

const now = () => new Date().toISOString();
const random = () => Math.random().toString(36).slice(2);

/**
 * What a personalization level lets the SDK send (README: "Consent"): basic, declared traits and
 * the user's explicit choices about widgets; off, nothing. Nothing leaves before it is known.
 * @param {Queue} queue @param {Message} call
 */
export const allowed = (queue, call) => queue.level === "full" || (queue.level === "basic" && BASIC.test(call.event || call.type));

/** A Segment call of the configured user. @param {Record<string, unknown>} fields @returns {Message} */
export const message = (fields) => Object.assign({
  messageId: Date.now().toString(36) + random() + random(),
  tenantId: config.tenantId,
  userId: config.userId,
  timestamp: now(),
}, fields);

/** @param {Config} config @returns {Queue} */
function queueOf(config) {
  const key = storageKey("q", config);
  /** @type {Queue} */
  const queue = {
    config,
    key,
    items: list(readJSON(key)).filter((item) => item && item.messageId),
    level: LEVELS.test(/** @type {string} */ (config.personalization)) ? /** @type {Personalization} */ (config.personalization) : null,
    delay: 0,
    beaconed: new Set(),
  };
  if (queue.items.length) setTimeout(() => flush(queue), 0); // left by an earlier page
  return queue;
}

/**
 * After init: the queue of the configured user, the one before with the new options when the user
 * is the same; otherwise what the previous user had queued goes with that user's credentials.
 * @param {Config} config
 */
export function useQueueOf(config) {
  if (currentQueue && currentQueue.key === storageKey("q", config)) {
    currentQueue.config = config;
    if (LEVELS.test(/** @type {string} */ (config.personalization))) currentQueue.level = /** @type {Personalization} */ (config.personalization);
  } else {
    flush(currentQueue);
    currentQueue = queueOf(config);
  }
}

/** @param {Queue} queue */
export const saveQueue = (queue) => write(queue.key, JSON.stringify(queue.items));

/**
 * Queues a call the current level allows: sent within 250 ms, or at once.
 * @param {Message} call @param {boolean} [atOnce] @returns {Promise<void>}
 */
export function enqueue(call, atOnce) {
  const queue = currentQueue;
  if (!queue || (queue.level && !allowed(queue, call))) return resolved();
  queue.items.push(call);
  queue.items.splice(0, queue.items.length - MAX_QUEUE);
  saveQueue(queue);
  if (atOnce) return flush(queue);
  if (!queue.timer) queue.timer = setTimeout(() => flush(queue), 250);
  return resolved();
}

/** Sends what is queued now; on failure, again later with backoff. @param {Queue | null} queue @returns {Promise<void>} */
export function flush(queue) {
  if (!queue) return resolved();
  clearTimeout(queue.timer);
  queue.timer = 0;
  return queue.sending || (queue.sending = send(queue).then(() => {
    queue.sending = null;
    queue.delay = 0;
  }, (error) => {
    // Network trouble or a server error: keep the events (messageId makes resending safe).
    queue.sending = null;
    queue.inFlight = null;
    fail(error);
    queue.delay = Math.min(queue.delay * 2 || 1000, 60000);
    queue.timer = setTimeout(() => flush(queue), queue.delay * (1 + Math.random() / 2));
  }));
}

/** @param {Queue} queue */
async function send(queue) {
  const userConfig = queue.config;
  while (queue.items.length) {
    if (!queue.level) {
      const level = (await (await request(userConfig, "/v1/preferences" + userQuery(userConfig))).json()).personalization;
      write(storageKey("p", userConfig), queue.level = LEVELS.test(level) ? level : "off"); // remembered for the next page
    }
    queue.items = queue.items.filter((item) => allowed(queue, item));
    saveQueue(queue);
    const batch = queue.inFlight = queue.items.filter((item) => !queue.beaconed.has(item)).slice(0, BATCH);
    if (!batch.length) return;
    await post(queue, batch);
    queue.inFlight = null;
  }
}

/** @param {Queue} queue @param {Message[]} batch */
async function post(queue, batch) {
  const body = JSON.stringify({ batch, sentAt: now() });
  try {
    // keepalive: the request survives the page being closed or navigated away from.
    await request(queue.config, "/v1/events", { method: "POST", body, keepalive: body.length < 6e4, headers: { "Content-Type": "application/json" } });
  } catch (/** @type {any} */ error) {
    if (!error.status || error.status === 429 || error.status >= 500) throw error;
    // Rejected as sent: sending it again would not help. When Cairn names the one event at
    // fault (field "batch[3]…"), only that one is dropped and the others go again.
    fail(error);
    const bad = /^batch\[(\d+)\]/.exec(error.field);
    if (bad) batch = [batch[/** @type {any} */ (bad[1])]];
  }
  queue.items = queue.items.filter((item) => batch.indexOf(item) < 0);
  saveQueue(queue);
}

// The page is being hidden or closed: send what is queued now, in a request that outlives it.
// A beacon first. It cannot carry headers, so the publishable key and the user hash go in its
// body, as text/plain (a type that needs no CORS preflight). It gives no receipt either: what it
// carried stays queued, and goes again from the next page, or from this one once it is shown
// again (messageId makes that safe). No beacon, or one refused (a browser takes at most 64 KB):
// the usual request, keepalive when it fits.
export function sendBeforeHiding() {
  const queue = currentQueue;
  if (!queue || !queue.level) return;
  const userConfig = queue.config;
  const batch = queue.items.filter((item) => allowed(queue, item) && !queue.beaconed.has(item) &&
    (!queue.inFlight || /** @type {Message[]} */ (queue.inFlight).indexOf(item) < 0)).slice(0, BATCH);
  if (!batch.length) return;
  batch.forEach((item) => queue.beaconed.add(item));
  const body = JSON.stringify({ batch, sentAt: now(), writeKey: userConfig.key, userHash: text(userConfig.userHash) });
  try {
    if (navigator.sendBeacon(userConfig.host + "/v1/events", new Blob([body], { type: "text/plain;charset=UTF-8" }))) return;
  } catch { /* no sendBeacon */ }
  post(queue, batch).catch(() => { /* still queued for the next page */ });
}

/**
 * `sdk_problem`: a widget the SDK could not render, or rendered with an accessibility problem it
 * can see; once per decision, widget and kind. Experiments' guardrails read them.
 * @param {Mount} mount @param {any} widget @param {string} kind @param {unknown} detail
 */
export function problem(mount, widget, kind, detail) {
  const decision = mount.descriptor && mount.descriptor.decision_id;
  const key = decision + " " + widget.id + " " + kind;
  if (!config || reported.has(key)) return;
  reported.add(key);
  enqueue(message({
    type: "track",
    event: "sdk_problem",
    properties: { widget_id: String(widget.id), widget_type: String(widget.type), kind, detail: String(detail).slice(0, 200), decision_id: decision, screen: mount.screen },
  }), true);
}

/** @type {Set<string>} */
const reported = new Set();

/**
 * A widget event (widget_viewed, widget_clicked, …) for the widget element `el` of a mount: sent
 * at once, except views.
 * @param {Mount} mount @param {string} name @param {Element} el @param {Record<string, unknown>} [extra]
 */
export function widgetEvent(mount, name, el, extra) {
  if (!config) return resolved();
  return enqueue(message({
    type: "track",
    event: name,
    properties: Object.assign({
      widget_id: el.getAttribute("data-widget-id"),
      widget_type: el.getAttribute("data-widget-type"),
      decision_id: mount.descriptor && mount.descriptor.decision_id,
      screen: mount.screen,
    }, extra),
  }), name !== "widget_viewed");
}
