// @ts-check
// The widget renderers, widget type → (widget, ctx) → Element: the seven types of schema version 1
// are built in; the host page adds, replaces or removes any with registerRenderer.
import { h, safeHref, uniqueId } from "./dom.js";
import { list, text } from "./guards.js";

/** @import { LayoutDescriptor, RenderContext, Renderer } from "./cairn" */
/** @import { Mount } from "./mounts.js" */
/** @typedef {Record<string, any>} Props  a widget's props as sent: renderers coerce what they read */

/** @type {Record<string, Renderer>} */
export const renderers = Object.create(null);

/**
 * The helpers handed to a renderer.
 * @param {Mount} mount
 * @param {{heading?: string}} frame  gets the id of the widget's heading, which labels the widget
 * @returns {RenderContext}
 */
export function renderContext(mount, frame) {
  const descriptor = /** @type {LayoutDescriptor} */ (mount.descriptor);
  return {
    h,
    screen: mount.screen,
    decisionId: descriptor.decision_id,
    descriptor,
    heading(title) {
      frame.heading = uniqueId("cairn-h");
      return h("h" + mount.headingLevel, { id: frame.heading }, text(title));
    },
    link(href, label, item, className) {
      const safe = safeHref(href);
      return safe
        ? h("a", { href: safe, class: className, "data-cairn-item": item }, label)
        : h("span", { class: className }, label);
    },
    progress(done, total) {
      done = Number(done) || 0;
      total = Number(total) || 0;
      return h("p", { class: "cairn-progress" },
        h("progress", { value: done, max: total, "aria-hidden": "true" }),
        " " + done + " of " + total + " done");
    },
  };
}

/** @param {...unknown} children */
const content = (...children) => h("div", null, ...children);

/** @param {RenderContext} ctx @param {Props | undefined} link @param {string} item @param {string} [className] */
const cta = (ctx, link, item, className) => {
  link = link || {};
  return ctx.link(link.href, text(link.label), item, className);
};

/** A titled list. @param {any} title @param {RenderContext} ctx @param {unknown} rows @param {(row: any) => Node} row */
const titledList = (title, ctx, rows, row) => content(ctx.heading(title), h("ul", null, list(rows).map(row)));

/** @type {Record<string, (props: Props, ctx: RenderContext) => Node>} */
const builtins = {
  shortcut_grid: (props, ctx) =>
    titledList(props.title, ctx, props.items, (item) => {
      const icon = text(item.icon);
      return h("li", null, ctx.link(item.href, [
        icon && h("span", { class: "cairn-icon", "data-icon": icon, "aria-hidden": "true" },
          /[^\x00-\x7f]/.test(icon) ? icon + " " : ""),
        text(item.label),
      ], text(item.label)));
    }),
  next_step_card: (props, ctx) => {
    const progress = props.progress;
    return content(ctx.heading(props.title), h("p", null, text(props.body)),
      progress && progress.total > 0 && ctx.progress(progress.done, progress.total),
      h("p", null, cta(ctx, props.cta, "cta", "cairn-cta")));
  },
  checklist: (props, ctx) => {
    const rows = list(props.items);
    const done = rows.filter((item) => item.done).length;
    return content(ctx.heading(props.title), rows.length > 0 && ctx.progress(done, rows.length), h("ul", null, rows.map((item) =>
      h("li", { class: item.done ? "cairn-done" : null },
        h("span", { "aria-hidden": "true" }, item.done ? "\u2713 " : "\u25cb "),
        h("span", { class: "cairn-sr" }, item.done ? "Done: " : "To do: "),
        item.done ? text(item.label) : ctx.link(item.href, text(item.label), item.id)))));
  },
  integration_prompt: (props, ctx) =>
    titledList(props.title, ctx, props.integrations, (integration) => {
      const peers = integration.peer_adoption;
      const share = peers && Number(peers.share);
      return h("li", null, h("strong", null, text(integration.name)),
        peers && isFinite(share) &&
          h("span", { class: "cairn-muted" }, " " + Math.round(share <= 1 ? share * 100 : share) + "% of " + text(peers.cohort)),
        " ", ctx.link(integration.connect_href, "Connect " + text(integration.name), integration.id, "cairn-cta"));
    }),
  upgrade_gate: (props, ctx) =>
    content(ctx.heading(props.title), h("p", null, text(props.roi)),
      h("p", null, cta(ctx, props.cta, "cta", "cairn-cta"), " ", cta(ctx, props.back, "back"))),
  help_tip: (props, ctx) => {
    const article = props.article || {};
    return content(ctx.heading(props.title), h("p", null, text(props.body)),
      h("p", null, ctx.link(article.href, text(article.title), article.id),
        article.kind && h("span", { class: "cairn-muted" }, " (" + text(article.kind) + ")")));
  },
  template_gallery: (props, ctx) =>
    titledList(props.title, ctx, props.templates, (template) =>
      h("li", null, ctx.link(template.href, text(template.name), template.id),
        template.reason && h("div", { class: "cairn-muted" }, text(template.reason)))),
};
Object.keys(builtins).forEach((type) => {
  renderers[type] = (widget, ctx) => builtins[type](widget.props || {}, ctx);
});
