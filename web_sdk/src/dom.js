// @ts-check
// Safe DOM building: text only through text nodes, attributes only through setAttribute.
import { guard } from "./guards.js";

export const FOCUSABLE = "a[href],button,select";

let lastId = 0;
/** An element id of its own on the page. @param {string} prefix */
export const uniqueId = (prefix) => prefix + ++lastId;

/**
 * h("p", {class: "x"}, "text", child): attributes null or false are left out, true is "", and
 * on<event> ones become guarded listeners; children are flattened, and strings become text nodes.
 * @param {string} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const name in attrs || {}) {
    const value = /** @type {Record<string, any>} */ (attrs)[name];
    if (value == null || value === false) continue;
    if (name.slice(0, 2) === "on") el.addEventListener(name.slice(2), guard(value));
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

/** @param {Element} el @param {unknown[]} children */
export function append(el, children) {
  children.forEach((child) => {
    if (Array.isArray(child)) append(el, child);
    else if (child != null && child !== false) el.append(child instanceof Node ? child : String(child));
  });
}

/**
 * http(s) or relative URLs only; anything else (javascript:, data:, …) is not a link. Relative
 * ones are judged against a fixed http base, so the verdict does not depend on the host page.
 * @param {unknown} href
 */
export function safeHref(href) {
  if (typeof href !== "string" || !href.trim()) return null;
  try {
    return /^https?:$/.test(new URL(href, "http://h/").protocol) ? href : null;
  } catch {
    return null;
  }
}

/** The widget of this id under root. @param {ParentNode} root @param {string} id */
export const findWidget = (root, id) =>
  [...root.querySelectorAll("[data-widget-id]")].find((el) => el.getAttribute("data-widget-id") === id);
