// @ts-check
// The preference center, a bundle of its own (dist/cairn.preferences.min.js) loaded after cairn.js
// or cairn.core.js: Cairn.preferences(element) renders the user's preferences as a form, from
// GET /v1/preferences/explain (what each control means and offers) and GET /v1/preferences, and
// saves the whole document with PUT. It uses the loaded SDK's configuration and requests (its
// hook, Cairn._prefs); after a save, as setPersonalization does, the SDK's queued events the new
// level does not allow are dropped and the layouts on screen are fetched again. Semantic HTML (fieldsets, legends, labels, a status region),
// styled by preferences-style.js unless init({css: false}); server text only as text nodes;
// nothing throws into the host page.
import { configure } from "./config.js";
import { h, uniqueId } from "./dom.js";
import { fail, guardAsync, list, text, warn } from "./guards.js";
import { PREFERENCES_CSS } from "./preferences-style.js";

/** @import { CairnError, CairnSDK, Personalization, Preferences, PreferencesOptions } from "./cairn" */
/** @import { Config } from "./config.js" */
/** @import { PreferencesHook } from "./index.js" */

/**
 * @typedef {object} Explanation  GET /v1/preferences/explain, as far as the form reads it
 * @property {string} summary
 * @property {{id: string, label: string, description: string, purposes: string[]}[]} levels
 * @property {{id: string, label: string, description: string, if_off: string, required: boolean, withheld: boolean}[]} purposes
 * @property {{purposes: string, notifications: string}} controls
 * @property {{channels: Choice[], categories: Choice[], digest: Choice[]}} notification_choices
 */
/** @typedef {{id: string, label: string}} Choice */

const encode = encodeURIComponent;
const own = (/** @type {object} */ object, /** @type {string} */ key) => Object.prototype.hasOwnProperty.call(object, key);

/** What the preference center uses of the loaded SDK (index.js); null before Cairn.init. */
function core() {
  const sdk = /** @type {{_prefs?: PreferencesHook}} */ (window.Cairn);
  const hook = sdk && typeof sdk._prefs === "function" ? sdk._prefs() : null;
  if (!hook || !hook[0]) return null;
  configure(hook[0]); // this bundle's guards report to the host's onError too
  return hook;
}

/** @param {Config} config */
const userQuery = (config) => "?tenant_id=" + encode(config.tenantId) + "&user_id=" + encode(config.userId);

function addStylesheet() {
  if (document.getElementById("cairn-prefs-css")) return;
  const style = document.createElement("style");
  style.id = "cairn-prefs-css";
  style.textContent = PREFERENCES_CSS;
  (document.head || document.documentElement).append(style);
}

/** The time zone of the browser (an IANA name), or UTC. */
function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

/** The IANA time zones the browser knows, for suggestions. @returns {string[]} */
function knownZones() {
  try {
    return /** @type {any} */ (Intl).supportedValuesOf("timeZone");
  } catch {
    return [];
  }
}

/**
 * A checkbox or radio button with its label, and under it the hints that describe it.
 * @param {string} type @param {Record<string, any>} attrs @param {unknown} label @param {...unknown} hints
 * @returns {[HTMLElement, HTMLInputElement]} the row and its input
 */
function choice(type, attrs, label, ...hints) {
  const id = uniqueId("cairn-prefs-");
  const shown = hints.filter((hint) => text(hint));
  const hintIds = shown.map(() => uniqueId("cairn-prefs-hint"));
  const input = /** @type {HTMLInputElement} */ (h("input", Object.assign({ type, id, "aria-describedby": hintIds.join(" ") || null }, attrs)));
  return [h("div", { class: "cairn-prefs-choice" }, input, h("label", { for: id }, text(label)),
    shown.map((hint, i) => h("span", { id: hintIds[i], class: "cairn-prefs-hint" }, text(hint)))), input];
}

/** A labelled control on a line of its own. @param {string} label @param {HTMLElement} control */
function labelled(label, control) {
  const id = control.id || (control.id = uniqueId("cairn-prefs-"));
  return h("div", null, h("label", { for: id }, label), " ", control);
}

/** What a failed request says to the user. @param {CairnError} error @param {string} what */
function trouble(error, what) {
  const status = Number(error && error.status);
  return status >= 400 && status < 500 && status !== 429 && error.message
    ? what + ": " + error.message
    : what + ": the service could not be reached. Please try again in a moment.";
}

/**
 * The SDK's user saved `level`: what is queued and not allowed now is dropped at once, and the
 * layouts on screen are fetched again (as setPersonalization does in the full build).
 * @param {ReturnType<PreferencesHook>} hook @param {Personalization} level
 */
function useLevel(hook, level) {
  const queue = hook[2];
  const allowed = hook[3];
  queue.level = level;
  queue.items = queue.items.filter((item) => allowed(queue, item));
  hook[4](queue);
  hook[5].forEach((mount) => {
    if (mount.requests) hook[6](mount);
  });
}

/**
 * Cairn.preferences, unguarded: renders the user's preference center into `element`. Resolves
 * with the preferences shown, or null when they could not be loaded (a message says so in the
 * element).
 * @param {Element | string} element @param {PreferencesOptions} [options]
 * @returns {Promise<Preferences | null>}
 */
function preferences(element, options) {
  const el = typeof element === "string" ? document.querySelector(element) : element;
  if (!el || !el.nodeType) throw new Error("Cairn.preferences needs an element to render into");
  const hook = core();
  el.classList.add("cairn-prefs");
  if (!hook) {
    el.textContent = "";
    el.append(h("p", { class: "cairn-prefs-error" }, "Your preferences cannot be shown yet: the page has not started Cairn."));
    throw new Error("Cairn.preferences called before Cairn.init");
  }
  const userConfig = hook[0];
  if (userConfig.css !== false) addStylesheet();
  const headingLevel = Math.min(Math.max(Number((options || {}).headingLevel) || 2, 2), 6);
  el.setAttribute("aria-busy", "true");
  /** @param {string} path */
  const get = (path) => hook[1](userConfig, path + userQuery(userConfig)).then((response) => response.json());
  return Promise.all([get("/v1/preferences/explain"), get("/v1/preferences")]).then(([explanation, saved]) => {
    const form = preferenceForm(hook, explanation, saved, headingLevel);
    el.textContent = "";
    el.append(form);
    return saved;
  }).catch((error) => { // Cairn did not answer, or not with what the form needs
    fail(error);
    el.textContent = "";
    el.append(h("p", { class: "cairn-prefs-error", role: "alert" }, trouble(error, "Your preferences could not be loaded")),
      h("button", { type: "button", onclick: () => api(el, options) }, "Try again"));
    return null;
  }).then((shown) => {
    el.removeAttribute("aria-busy");
    return shown;
  });
}

/**
 * The form: a summary, the level (a radio group), a checkbox per purpose, the notification
 * channels, categories, digest cadence and quiet hours, a save button and a status region.
 * @param {ReturnType<PreferencesHook>} hook @param {Explanation} explanation
 * @param {Preferences} saved @param {number} headingLevel
 */
function preferenceForm(hook, explanation, saved, headingLevel) {
  const userConfig = hook[0];
  const request = hook[1];
  const path = "/v1/preferences" + userQuery(userConfig);
  const levels = list(explanation.levels);
  const controls = explanation.controls || {};
  const offered = explanation.notification_choices || {};
  const notifications = saved.notifications || {};
  const quiet = notifications.quiet_hours;
  /** @type {Record<string, boolean>} */
  const overrides = Object.assign({}, saved.purposes);
  let level = text(saved.personalization);
  let saving = false;

  const headingId = uniqueId("cairn-prefs-h");
  const statusId = uniqueId("cairn-prefs-status");
  const summary = h("p", { class: "cairn-prefs-summary" }, text(explanation.summary));
  const status = h("p", { id: statusId, class: "cairn-prefs-status", role: "status", "aria-live": "polite" });

  // The level: a radio group (arrow keys move the choice).
  const levelName = uniqueId("cairn-prefs-level");
  const dial = h("fieldset", null, h("legend", null, "Personalization"),
    levels.map((option) => choice("radio", {
      name: levelName, value: text(option.id), checked: option.id === level,
      onchange: () => {
        level = text(option.id);
        showPurposes();
      },
    }, option.label, option.description)[0]));

  // The purposes: a checkbox each; the required ones always on, those the organization withholds
  // always off, and all but the required off while personalization is off.
  /** @param {string} id */
  const levelGrants = (id) => levels.some((option) => option.id === level && list(option.purposes).indexOf(id) >= 0);
  const offNote = h("p", { class: "cairn-prefs-hint" }, "Personalization is off: we use only what the product needs.");
  const purposeRows = list(explanation.purposes).map((purpose) => {
    const id = text(purpose.id);
    const row = choice("checkbox", {
      "data-cairn-field": "purposes." + id,
      onchange: /** @this {HTMLInputElement} */ function () {
        if (this.checked === levelGrants(id)) delete overrides[id];
        else overrides[id] = this.checked;
      },
    }, purpose.label, purpose.description,
    purpose.required ? "Always on. " + text(purpose.if_off)
      : purpose.withheld ? "Your organization does not allow this: it stays off whatever you choose."
        : "If off: " + text(purpose.if_off));
    return { purpose, input: row[1], row: row[0] };
  });
  function showPurposes() {
    offNote.hidden = level !== "off";
    purposeRows.forEach(({ purpose, input }) => {
      const id = text(purpose.id);
      input.disabled = !!(purpose.required || purpose.withheld || level === "off");
      input.checked = !!purpose.required || (!purpose.withheld && level !== "off" && (own(overrides, id) ? !!overrides[id] : levelGrants(id)));
    });
  }
  showPurposes();

  // Notifications: channels and categories (checkboxes), the digest (a select), quiet hours.
  /** @param {string} legend @param {string} field @param {Choice[]} choices @param {unknown} chosen */
  const checkboxes = (legend, field, choices, chosen) => {
    const inputs = list(choices).map((option) => choice("checkbox", { value: text(option.id), checked: list(chosen).indexOf(option.id) >= 0 }, option.label));
    return {
      group: h("fieldset", { "data-cairn-field": field }, h("legend", null, legend), inputs.map((row) => row[0])),
      chosen: () => inputs.filter((row) => row[1].checked).map((row) => row[1].value),
    };
  };
  const channels = checkboxes("Channels", "notifications.channels", offered.channels, notifications.channels);
  const categories = checkboxes("Categories", "notifications.categories", offered.categories, notifications.categories);
  const digest = /** @type {HTMLSelectElement} */ (h("select", { "data-cairn-field": "notifications.digest" },
    list(offered.digest).map((option) => h("option", { value: text(option.id), selected: option.id === notifications.digest }, text(option.label)))));
  const zoneList = uniqueId("cairn-prefs-zones");
  const zone = quiet ? text(quiet.time_zone) : browserZone();
  const start = /** @type {HTMLInputElement} */ (h("input", { type: "time", value: quiet ? text(quiet.start) : "22:00", "data-cairn-field": "notifications.quiet_hours.start" }));
  const end = /** @type {HTMLInputElement} */ (h("input", { type: "time", value: quiet ? text(quiet.end) : "07:00", "data-cairn-field": "notifications.quiet_hours.end" }));
  const timeZone = /** @type {HTMLInputElement} */ (h("input", {
    type: "text", value: zone, list: zoneList, autocomplete: "off", spellcheck: "false",
    "data-cairn-field": "notifications.quiet_hours.time_zone",
  }));
  const zones = knownZones();
  if (zones.indexOf(zone) < 0) zones.unshift(zone);
  const quietBox = choice("checkbox", {
    checked: !!quiet,
    onchange: () => showQuiet(),
  }, "Pause notifications during quiet hours", "Nothing reaches you outside the product between these times, in your time zone.");
  const showQuiet = () => {
    [start, end, timeZone].forEach((input) => { input.disabled = !quietBox[1].checked; });
  };
  showQuiet();

  const form = h("form", {
    class: "cairn-prefs-form", "aria-labelledby": headingId, novalidate: true,
    onsubmit: (/** @type {Event} */ event) => {
      event.preventDefault();
      save();
    },
  },
  h("h" + headingLevel, { id: headingId }, "Your preferences"),
  summary,
  dial,
  h("fieldset", null, h("legend", null, "What we may use"),
    h("p", { class: "cairn-prefs-hint" }, text(controls.purposes)), offNote, purposeRows.map((row) => row.row)),
  h("fieldset", null, h("legend", null, "Notifications"),
    h("p", { class: "cairn-prefs-hint" }, text(controls.notifications)),
    channels.group, categories.group, labelled("Digest", digest),
    h("fieldset", null, h("legend", null, "Quiet hours"), quietBox[0],
      h("div", { class: "cairn-prefs-times" }, labelled("From", start), labelled("Until", end), labelled("Time zone", timeZone),
        h("datalist", { id: zoneList }, zones.map((name) => h("option", { value: name })))))),
  h("button", { type: "submit" }, "Save preferences"),
  status);

  /** @param {string} message @param {boolean} [problem] */
  const say = (message, problem) => {
    status.textContent = message;
    status.classList.toggle("cairn-prefs-error", !!problem);
  };

  /** The control a field of the preferences document is set with. @param {unknown} field */
  const controlOf = (field) => [...form.querySelectorAll("[data-cairn-field]")].find((control) => {
    const name = /** @type {string} */ (control.getAttribute("data-cairn-field"));
    const path = text(field);
    return path === name || path.indexOf(name + ".") === 0 || path.indexOf(name + "[") === 0;
  });
  /** What the user knows a control as: its label, or its group's legend. @param {Element} control */
  const nameOf = (control) => {
    const label = /** @type {HTMLInputElement} */ (control).labels;
    const legend = control.querySelector("legend");
    return text(((label && label[0]) || legend || control).textContent).trim();
  };

  function save() {
    if (saving) return;
    form.querySelectorAll("[aria-invalid]").forEach((control) => {
      control.removeAttribute("aria-invalid");
      control.removeAttribute("aria-errormessage");
    });
    const quietHours = quietBox[1].checked ? { start: start.value, end: end.value, time_zone: timeZone.value.trim() } : null;
    const missing = quietHours && [start, end, timeZone].filter((input) => !input.value.trim())[0];
    if (missing) return refuse(missing, "needed for quiet hours.");
    /** @type {Preferences} */
    const body = Object.assign({}, saved, {
      personalization: /** @type {Personalization} */ (level),
      purposes: overrides,
      notifications: Object.assign({}, saved.notifications, {
        channels: channels.chosen(),
        categories: categories.chosen(),
        digest: /** @type {Preferences["notifications"]["digest"]} */ (digest.value),
        quiet_hours: quietHours,
      }),
    });
    saving = true;
    say("Saving\u2026");
    request(userConfig, path, { method: "PUT", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } })
      .then((response) => response.json())
      .then((stored) => {
        saved = stored;
        const now = core();
        if (now && now[0].tenantId === userConfig.tenantId && now[0].userId === userConfig.userId) useLevel(now, stored.personalization);
        say("Your preferences are saved.");
        // The summary for the level now saved (if this fails, the form is still right).
        request(userConfig, "/v1/preferences/explain" + userQuery(userConfig))
          .then((response) => response.json())
          .then((fresh) => { summary.textContent = text(fresh.summary); })
          .catch(fail);
      }, (/** @type {CairnError} */ error) => {
        fail(error);
        const control = controlOf(error && error.field);
        if (control && error.status && error.status < 500) refuse(control, error.message);
        else say(trouble(error, "Not saved"), true);
      })
      .catch(fail)
      .then(() => { saving = false; });
  }

  /** Not saved, because of what a control holds. @param {Element} control @param {string} message */
  function refuse(control, message) {
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-errormessage", statusId);
    say("Not saved. " + nameOf(control) + ": " + message, true);
  }

  return form;
}

const api = guardAsync(preferences);
const sdk = /** @type {CairnSDK | undefined} */ (window.Cairn);
if (sdk && typeof sdk.render === "function") {
  if (!sdk.preferences) sdk.preferences = api; // loaded twice: the first copy stays in charge
} else {
  warn("load cairn.preferences.js after cairn.js or cairn.core.js");
}
