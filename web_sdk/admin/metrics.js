// @ts-check
// The metrics dashboard's charts (/admin/metrics), drawn with Observable Plot from the answers
// the page carries in <script type="application/json" id="cairn-charts">. Each chart has its table
// beside it (rendered by the server): the chart is for the eye, the table for reading and copying.
import * as Plot from "@observablehq/plot";

/**
 * @typedef {{n: number, value: number | null, ci?: [number | null, number | null] | null,
 *   small?: boolean, week_n?: number, step?: number, label?: string, through?: number | null}} Point
 * @typedef {Point & {key: Record<string, string>, weeks?: Point[], steps?: Point[]}} Group
 * @typedef {{arm: string, relative: number, low: number, high: number, worse: boolean}} LiftRow
 * @typedef {{id: string, metric: string, label: string, kind: string, format: string | null,
 *   chart: "bars" | "heatmap" | "funnel" | "lift", groups: Group[], lifts?: LiftRow[]}} Chart
 */

const WIDTH = 560;

/** @param {number | null | undefined} value @param {string | null} format */
function formatted(value, format) {
  if (value == null) return "not reached";
  if (format === "percent") return `${(value * 100).toFixed(1)}%`;
  if (format === "duration") {
    const hours = value / 3600;
    return hours >= 48 ? `${(hours / 24).toFixed(1)} d` : `${hours.toFixed(1)} h`;
  }
  return value.toFixed(2);
}

/** @param {Group} group */
function groupName(group) {
  const parts = Object.values(group.key).map((part) => part || "(none)");
  return parts.length ? parts.join(" · ") : "all";
}

/** A horizontal bar per group, with its 95% interval as a line. @param {Chart} chart */
function bars(chart) {
  // Durations are drawn in hours (the table keeps them as people read them).
  const scale = chart.format === "duration" ? 1 / 3600 : 1;
  const rows = chart.groups
    .filter((g) => g.value != null)
    .map((g) => ({
      name: groupName(g),
      raw: /** @type {number} */ (g.value),
      value: /** @type {number} */ (g.value) * scale,
      low: (g.ci && g.ci[0] != null ? g.ci[0] : /** @type {number} */ (g.value)) * scale,
      high: (g.ci && g.ci[1] != null ? g.ci[1] : /** @type {number} */ (g.value)) * scale,
      small: !!g.small,
    }));
  const percent = chart.format === "percent";
  const unit = percent ? " (%)" : chart.format === "duration" ? " (hours)" : "";
  return Plot.plot({
    width: WIDTH,
    marginLeft: 160,
    height: 40 + 32 * Math.max(rows.length, 1),
    ariaLabel: `${chart.label}, by group`,
    ariaDescription: rows.map((r) => `${r.name}: ${formatted(r.raw, chart.format)}`).join("; "),
    x: { label: chart.label + unit, percent, grid: true, nice: true },
    y: { label: null },
    marks: [
      Plot.barX(rows, { y: "name", x: "value", fill: (r) => (r.small ? "#9aa9c2" : "#2457d6"),
        title: (r) => `${r.name}: ${formatted(r.raw, chart.format)}` }),
      Plot.ruleY(rows, { y: "name", x1: "low", x2: "high", stroke: "#14213d", strokeWidth: 2 }),
      Plot.ruleX([0]),
    ],
  });
}

/** Week-N retention (columns) by sign-up week (rows). @param {Chart} chart */
function heatmap(chart) {
  const cells = chart.groups.flatMap((g) =>
    (g.weeks || []).filter((w) => w.n > 0 && w.value != null).map((w) => ({
      cohort: groupName(g), week: w.week_n, value: w.value,
    })));
  return Plot.plot({
    width: WIDTH,
    marginLeft: 110,
    height: 40 + 22 * Math.max(chart.groups.length, 1),
    ariaLabel: `${chart.label}: the share of each sign-up week active in week N`,
    ariaDescription: `${cells.length} cells; the table beside the chart lists every value.`,
    x: { label: "Week after sign-up", type: "band" },
    y: { label: "Sign-up week", type: "band" },
    color: { type: "linear", domain: [0, 1], scheme: "blues", legend: true,
      label: "Share active", tickFormat: "%" },
    marks: [
      Plot.cell(cells, { x: "week", y: "cohort", fill: "value", inset: 0.5,
        title: (c) => `${c.cohort}, week ${c.week}: ${formatted(c.value, "percent")}` }),
    ],
  });
}

/** Each step's share, and the share that took it and every step before. @param {Chart} chart */
function funnel(chart) {
  const all = chart.groups[0];
  const steps = (all && all.steps) || [];
  const took = steps.map((s) => ({ step: `${s.step}. ${s.label}`, share: s.value || 0 }));
  const through = steps.map((s) => ({ step: `${s.step}. ${s.label}`, share: s.through || 0 }));
  return Plot.plot({
    width: WIDTH,
    marginLeft: 220,
    height: 40 + 44 * Math.max(steps.length, 1),
    ariaLabel: `${chart.label}: the share of users who took each activation step`,
    ariaDescription: steps.map((s) => `${s.label}: ${formatted(s.value, "percent")}`).join("; "),
    x: { label: "Share of the users the step is for (%)", percent: true, domain: [0, 100],
      grid: true },
    y: { label: null, domain: took.map((r) => r.step) },
    color: { domain: ["took this step", "and every step before"], range: ["#8fb0f0", "#14213d"],
      legend: true },
    marks: [
      // Two layers, not stacked: every step's share, and within it those who also took every
      // earlier step.
      Plot.barX(took, { y: "step", x1: 0, x2: "share", fill: () => "took this step",
        insetTop: 2, insetBottom: 2,
        title: (r) => `${r.step}: ${formatted(r.share, "percent")} took it` }),
      Plot.barX(through, { y: "step", x1: 0, x2: "share", fill: () => "and every step before",
        insetTop: 9, insetBottom: 9,
        title: (r) => `${r.step}: ${formatted(r.share, "percent")} took it and every step before` }),
      Plot.ruleX([0]),
    ],
  });
}

/** An experiment's relative lift per arm against control, with its 95% interval. @param {Chart} chart */
function lift(chart) {
  const rows = chart.lifts || [];
  return Plot.plot({
    width: WIDTH,
    marginLeft: 140,
    height: 50 + 36 * Math.max(rows.length, 1),
    ariaLabel: `${chart.label}: relative lift against control, with 95% intervals`,
    ariaDescription: rows.map((r) => `${r.arm}: ${(r.relative * 100).toFixed(1)}% ` +
      `(${(r.low * 100).toFixed(1)}% to ${(r.high * 100).toFixed(1)}%)`).join("; "),
    x: { label: "Relative lift against control (%)", percent: true, grid: true, nice: true },
    y: { label: null },
    marks: [
      Plot.ruleX([0], { stroke: "#1b1f24" }),
      Plot.ruleY(rows, { y: "arm", x1: "low", x2: "high", stroke: "#14213d", strokeWidth: 2 }),
      Plot.dot(rows, { y: "arm", x: "relative", r: 5, fill: (r) => (r.worse ? "#a11a1a" : "#2457d6"),
        title: (r) => `${r.arm}: ${(r.relative * 100).toFixed(1)}%` }),
    ],
  });
}

const DRAW = { bars, heatmap, funnel, lift };

/**
 * One image for assistive technology: the plot's SVG is an `img` named by its label and
 * description (the table beside it has every value); the labels Plot puts on its inner groups
 * ("bar", "y-axis tick") name nothing a reader needs, and ARIA does not allow them there.
 * @param {Element} figure
 */
function accessible(figure) {
  const svgs = figure.tagName.toLowerCase() === "svg" ? [figure] : [...figure.querySelectorAll("svg")];
  for (const svg of svgs) {
    if (svg.hasAttribute("aria-label")) svg.setAttribute("role", "img");
    else svg.setAttribute("aria-hidden", "true"); // a legend: its colours are named in the table
    for (const inner of svg.querySelectorAll("[aria-label], [aria-description]")) {
      inner.setAttribute("data-mark", inner.getAttribute("aria-label") || "");
      inner.removeAttribute("aria-label");
      inner.removeAttribute("aria-description");
    }
  }
}

function draw() {
  const island = document.getElementById("cairn-charts");
  if (!island) return;
  /** @type {Chart[]} */
  const charts = JSON.parse(island.textContent || "[]");
  for (const chart of charts) {
    const place = document.getElementById(`chart-${chart.id}`);
    if (!place) continue;
    try {
      const figure = DRAW[chart.chart](chart);
      figure.setAttribute("data-metric", chart.metric);
      accessible(figure);
      place.replaceChildren(figure);
    } catch (error) {
      place.textContent = "This chart could not be drawn; its table beside it has every value.";
      console.warn("Cairn: chart failed", chart.metric, error);
    }
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
else draw();
