// @ts-check
// The render core: a descriptor into a mount's element. Each widget in its frame ("Why this?",
// Dismiss), or its fallback, or nothing; the schema's once-per-screen rule; focus kept where it
// was; and widget_viewed for what the user has seen.
import { SCHEMA_VERSION } from "./config.js";
import { dismissedOnDevice, keepDismissal } from "./dismissals.js";
import { FOCUSABLE, append, findWidget, h, uniqueId } from "./dom.js";
import { problem, widgetEvent } from "./events.js";
import { fail, guard, list, text, warn } from "./guards.js";
import { refresh, setView } from "./mounts.js";
import { renderContext, renderers } from "./widgets.js";

/** @import { LayoutDescriptor, LayoutSource, ViewDescriptor } from "./cairn" */
/** @import { Mount } from "./mounts.js" */

const DISMISSIBLE = /^(next_step_card|help_tip|upgrade_gate|integration_prompt)$/;

// The screen rule of the published schema (widgets/layout.schema.json, "x-cairn-once-per-screen"),
// put in by build.mjs: widget type → group. A screen shows at most one widget of each group.
const onceGroups = new Map(Object.entries(CAIRN_ONCE_PER_SCREEN));

/**
 * A descriptor this SDK can show: anything else is never rendered nor cached.
 * @param {any} value @returns {value is LayoutDescriptor}
 */
const isDescriptor = (value) =>
  !!value && value.schema_version === SCHEMA_VERSION && typeof value.decision_id === "string" &&
  Array.isArray(value.slots) && value.slots.every((/** @type {any} */ slot) => slot && Array.isArray(slot.widgets));

/**
 * A widget in its frame, or its fallback, or null.
 * @param {Mount} mount @param {any} widget as sent @param {number} depth of fallbacks
 * @returns {HTMLElement | null}
 */
function framed(mount, widget, depth) {
  if (!widget || typeof widget !== "object" || depth > 8) return null;
  const id = text(widget.id);
  if (mount.dismissed.has(id) || dismissedOnDevice(id)) return null;
  const render = renderers[widget.type];
  /** @type {{heading?: string}} */
  const frame = {};
  let content = null;
  if (typeof render === "function") {
    try {
      content = render(widget, renderContext(mount, frame));
    } catch (error) {
      warn("renderer failed for " + widget.type, error);
      FULL: problem(mount, widget, "render", error);
    }
  }
  if (!(content instanceof Node)) {
    const hasFallback = widget.fallback && typeof widget.fallback === "object";
    warn((hasFallback ? "using the fallback of " : "dropped ") + "widget " + id + " of type " + text(widget.type));
    return hasFallback ? framed(mount, widget.fallback, depth + 1) : null;
  }
  const why = widget.why || {};
  let open = mount.openWhy.has(id);
  const panelId = uniqueId("cairn-why");
  const props = widget.props || {};
  const el = h("article", {
    class: "cairn-widget cairn-" + widget.type + (mount.shownIds && !mount.shownIds.has(id) ? " cairn-new" : ""),
    "data-widget-id": id,
    "data-widget-type": widget.type,
    "aria-labelledby": frame.heading,
  }, content);
  const panel = h("div", { id: panelId, class: "cairn-why", hidden: !open },
    h("p", null, text(why.summary)),
    list(why.drivers).length > 0 && h("ul", null, list(why.drivers).map((driver) => {
      const value = driver.value;
      return h("li", null, text(driver.signal) + ": " +
        (Array.isArray(value) ? value.join(", ") : value === true ? "yes" : value === false ? "no" : text(value)));
    })));
  append(el, [h("div", { class: "cairn-bar" },
    h("button", {
      type: "button", "data-cairn-ui": "why", "aria-expanded": String(open), "aria-controls": panelId,
      "aria-describedby": frame.heading,
      onclick: /** @this {Element} */ function () {
        open = /** @type {boolean} */ (panel.hidden);
        panel.hidden = !open;
        this.setAttribute("aria-expanded", String(open));
        mount.openWhy[open ? "add" : "delete"](id);
      },
    }, "Why this?"),
    (props.dismissible != null ? !!props.dismissible : DISMISSIBLE.test(widget.type)) && h("button", {
      type: "button", "data-cairn-ui": "dismiss", "aria-describedby": frame.heading,
      onclick: () => dismiss(mount, el, id),
    }, "Dismiss"),
  ), panel]);
  FULL: unnamed(mount, widget, content);
  return el;
}

/**
 * Reports (sdk_problem) the links and buttons of a widget's content that have no accessible
 * name: what the SDK can see of accessibility without asking the page.
 * @param {Mount} mount @param {any} widget @param {Node} content
 */
function unnamed(mount, widget, content) {
  const found = /** @type {Element} */ (content).querySelectorAll ? [...(/** @type {Element} */ (content)).querySelectorAll("a,button")] : [];
  if (found.some((control) => !(control.textContent || "").trim() && !control.getAttribute("aria-label"))) {
    problem(mount, widget, "accessibility", "a link or button without a name");
  }
}

/** Hides a widget at once, moves focus on to the next control, and reports widget_dismissed. @param {Mount} mount @param {HTMLElement} el @param {string} id */
function dismiss(mount, el, id) {
  const hadFocus = el.contains(document.activeElement);
  el.hidden = true;
  mount.dismissed.add(id);
  if (hadFocus) {
    const controls = [...mount.el.querySelectorAll(FOCUSABLE)].filter((control) => !control.closest("[hidden]"));
    const next = controls.filter((control) => el.compareDocumentPosition(control) & 4)[0] || controls.pop();
    if (next) /** @type {HTMLElement} */ (next).focus();
  }
  keepDismissal(id);
  widgetEvent(mount, "widget_dismissed", el).then(() => refresh(mount));
}

/**
 * Shows a descriptor in a mount; throws for anything but a layout of schema version 1.
 * @param {Mount} mount
 * @param {unknown} descriptor
 * @param {LayoutSource} source  "server" (fresh), "cache", "default" (bundled), "host" (renderDescriptor), "preview"
 */
export function paint(mount, descriptor, source) {
  if (!isDescriptor(descriptor)) throw new Error("Cairn: not a layout of schema version " + SCHEMA_VERSION);
  const root = mount.el;
  const view = /** @type {Partial<ViewDescriptor>} */ (descriptor.view || {});
  const signature = JSON.stringify([view, descriptor.slots, mount.headingLevel]);
  mount.descriptor = descriptor;
  root.classList.add("cairn-root");
  root.setAttribute("data-cairn-decision", descriptor.decision_id);
  root.setAttribute("data-cairn-layout", text(descriptor.layout));
  root.setAttribute("data-cairn-source", source);
  if (signature !== mount.signature) { // the same content again (a new decision id only): nothing moves
    const focus = focusPlace(root);
    const fragment = document.createDocumentFragment();
    /** @type {Set<string | null>} */
    const ids = new Set();
    const options = list(view.options).filter((option) => option && option.id !== view.id);
    if (options.length) {
      const selectId = uniqueId("cairn-view");
      fragment.append(h("div", { class: "cairn-views" },
        h("label", { for: selectId }, "Switch view"), " ",
        h("select", { id: selectId, onchange: /** @this {HTMLSelectElement} */ function () { setView(mount, this.value); } },
          [view].concat(options).map((option) =>
            h("option", { value: text(option.id), selected: option.id === view.id }, text(option.label || option.id))))));
    }
    /** @type {Set<string>} */
    const groups = new Set(); // after fallbacks, one widget of each once-per-screen group
    descriptor.slots.forEach((slot) => {
      const section = h("section", { class: "cairn-slot", "data-slot": text(slot.id) });
      slot.widgets.forEach((widget) => {
        const el = framed(mount, widget, 0);
        if (!el) return;
        const group = onceGroups.get(/** @type {string} */ (el.getAttribute("data-widget-type")));
        if (group) {
          if (groups.has(group)) return;
          groups.add(group);
        }
        ids.add(el.getAttribute("data-widget-id"));
        section.append(el);
      });
      if (section.firstChild) fragment.append(section);
    });
    root.textContent = "";
    root.append(fragment);
    mount.shownIds = ids;
    mount.signature = signature;
    restoreFocus(root, focus);
  }
  if (!/cache|default|preview/.test(source)) reportViews(mount);
  try {
    root.dispatchEvent(new CustomEvent("cairn:layout", { detail: descriptor }));
  } catch (error) {
    fail(error);
  }
}

/**
 * Where the focus is in root: the widget's id (null outside widgets) and the index of the
 * control among the focusable ones, or null.
 * @param {Element} root @returns {[string | null, number] | null}
 */
function focusPlace(root) {
  const active = document.activeElement;
  if (!active || active === root || !root.contains(active)) return null;
  const box = active.closest("[data-widget-id]") || root;
  return [box === root ? null : box.getAttribute("data-widget-id"), [...box.querySelectorAll(FOCUSABLE)].indexOf(active)];
}

/** @param {Element} root @param {[string | null, number] | null} place */
function restoreFocus(root, place) {
  if (!place) return;
  const box = place[0] == null ? root : findWidget(root, place[0]);
  const target = box && /** @type {HTMLElement | undefined} */ (box.querySelectorAll(FOCUSABLE)[place[1]]);
  if (target) target.focus();
}

/** widget_viewed once per widget per decision, after half of it has been on screen for a second. @param {Mount} mount */
function reportViews(mount) {
  if (mount.observer) mount.observer.disconnect();
  mount.viewTimers.forEach(clearTimeout);
  mount.viewTimers.clear();
  /** @param {Element} el */
  const seen = (el) => {
    const key = /** @type {LayoutDescriptor} */ (mount.descriptor).decision_id + "\n" + el.getAttribute("data-widget-id");
    if (mount.viewed.has(key) || !mount.el.contains(el)) return;
    mount.viewed.add(key);
    widgetEvent(mount, "widget_viewed", el);
  };
  const widgets = [...mount.el.querySelectorAll("[data-widget-id]")];
  if (!window.IntersectionObserver) return widgets.forEach(seen);
  const observer = mount.observer = new IntersectionObserver(guard((entries) => {
    entries.forEach((entry) => {
      const el = entry.target;
      clearTimeout(mount.viewTimers.get(el));
      if (entry.intersectionRatio >= 0.5) mount.viewTimers.set(el, setTimeout(() => seen(el), 1000));
    });
  }), { threshold: 0.5 });
  widgets.forEach((el) => observer.observe(el));
}
