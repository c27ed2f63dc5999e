// @ts-check
// The preference center's stylesheet (cairn.preferences.js injects it unless init({css: false});
// build.mjs appends it to dist/cairn.css). Self-contained, as the core build has no stylesheet;
// themeable with the SDK's --cairn-accent, --cairn-on-accent, --cairn-bg, --cairn-fg and
// --cairn-radius. Checkboxes and radio buttons are 24 px targets.
const accent = "var(--cairn-accent,#2563eb)";
const radius = "var(--cairn-radius,8px)";

export const PREFERENCES_CSS =
  ".cairn-prefs{color:var(--cairn-fg,#1f2937);max-width:44em}.cairn-prefs [hidden]{display:none!important}" +
  ".cairn-prefs form,.cairn-prefs fieldset{display:grid;gap:10px}.cairn-prefs p{margin:0}" +
  ".cairn-prefs :is(h2,h3,h4,h5,h6){font-size:1.25em;margin:0}" +
  ".cairn-prefs fieldset{border:1px solid #8a8f98;border-radius:" + radius + ";margin:0;padding:8px 16px 14px;min-width:0}" +
  ".cairn-prefs fieldset fieldset{border:0;padding:0}" +
  ".cairn-prefs legend{font-weight:600;padding:0 4px}.cairn-prefs fieldset fieldset legend{padding:0;margin-bottom:4px}" +
  ".cairn-prefs-choice{display:grid;grid-template-columns:24px 1fr;gap:2px 10px;align-items:center}" +
  ".cairn-prefs-choice .cairn-prefs-hint{grid-column:2}" +
  ".cairn-prefs-hint{font-size:.875em}" +
  ".cairn-prefs [type=checkbox],.cairn-prefs [type=radio]{width:24px;height:24px;margin:0;accent-color:" + accent + "}" +
  ".cairn-prefs :is(input:not([type=checkbox]):not([type=radio]),select){font:inherit;min-height:32px;color:inherit;background:var(--cairn-bg,#fff);border:1px solid #767676;border-radius:" + radius + ";padding:2px 8px}" +
  ".cairn-prefs-times{display:flex;flex-wrap:wrap;align-items:center;gap:8px 12px}" +
  ".cairn-prefs [aria-invalid=true]{border:2px solid #b91c1c}" +
  ".cairn-prefs button{font:inherit;min-height:32px;cursor:pointer;background:" + accent + ";color:var(--cairn-on-accent,#fff);border:1px solid " + accent + ";border-radius:" + radius + ";padding:4px 16px;justify-self:start}" +
  ".cairn-prefs-status:not(:empty){font-weight:600}.cairn-prefs-error{color:#b91c1c}" +
  ".cairn-prefs :focus-visible{outline:3px solid " + accent + ";outline-offset:2px}";
