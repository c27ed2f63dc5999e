// @ts-check
// The default stylesheet (full build; dist/cairn.css for the core build), injected once unless
// init({css: false}). Themeable with --cairn-accent, --cairn-on-accent, --cairn-bg, --cairn-fg and
// --cairn-radius.
import { config } from "./config.js";

export function addDefaultStylesheet() {
  if ((config && config.css === false) || document.getElementById("cairn-css")) return;
  const accent = "var(--cairn-accent,#2563eb)";
  const radius = "var(--cairn-radius,8px)";
  const style = document.createElement("style");
  style.id = "cairn-css";
  style.textContent =
    ".cairn-root,.cairn-slot{display:grid;gap:12px}.cairn-root{color:var(--cairn-fg,#1f2937)}" +
    ".cairn-root [hidden]{display:none!important}" +
    ".cairn-widget{background:var(--cairn-bg,#fff);color:var(--cairn-fg,#1f2937);border:1px solid #8a8f98;border-radius:" + radius + ";padding:16px}" +
    ".cairn-widget :is(h2,h3,h4,h5,h6){font-size:1.15em;margin:0 0 8px}.cairn-widget p{margin:8px 0}" +
    ".cairn-widget ul{list-style:none;margin:8px 0;padding:0;display:grid;gap:6px}" +
    ".cairn-shortcut_grid ul,.cairn-template_gallery ul{grid-template-columns:repeat(auto-fill,minmax(150px,1fr))}" +
    ".cairn-root a{color:" + accent + "}.cairn-root li a{display:inline-block;min-height:24px;line-height:24px}" +
    ".cairn-root a.cairn-cta{display:inline-block;background:" + accent + ";color:var(--cairn-on-accent,#fff);padding:6px 12px;border-radius:" + radius + ";text-decoration:none}" +
    ".cairn-bar{display:flex;gap:8px;margin-top:12px}" +
    ".cairn-root button,.cairn-root select{font:inherit;min-height:28px;color:inherit;background:none;border:1px solid #767676;border-radius:" + radius + ";padding:2px 10px;cursor:pointer}" +
    ".cairn-why,.cairn-muted{font-size:.875em}" +
    ".cairn-done{text-decoration:line-through}" +
    ".cairn-progress progress{accent-color:" + accent + ";vertical-align:middle}" +
    ".cairn-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    ".cairn-root :focus-visible{outline:3px solid " + accent + ";outline-offset:2px}" +
    "@media (prefers-reduced-motion:no-preference){.cairn-new{animation:cairn-in .25s ease-out}}" +
    "@keyframes cairn-in{from{opacity:0;transform:translateY(4px)}}";
  (document.head || document.documentElement).append(style);
}
