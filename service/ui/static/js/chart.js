// Line charts over the vendored uPlot (window.uPlot, loaded by index.html), with a text
// alternative: the plot's aria-label summarises each series, and a <details> holds the points
// as a table (built when opened). The figure's data-points attribute counts the x values.

import { clear, fmtNumber, h, table } from "./dom.js";

const HEIGHT = 320;

/** The summary of one series: "Training loss: 12 points, 5.12 at step 1 to 0.21 at step 12". */
function describe(s, rows, xKey, xLabel) {
  const points = rows.filter((r) => r[s.key] !== null && r[s.key] !== undefined);
  if (!points.length) return `${s.label}: no points yet`;
  const first = points[0];
  const last = points[points.length - 1];
  const n = points.length === 1 ? "1 point" : `${points.length} points`;
  if (s.markers) return `${s.label}: ${n}, at ${xLabel} ${points.map((p) => p[xKey]).join(", ")}`;
  return `${s.label}: ${n}, ${fmtNumber(first[s.key])} at ${xLabel} ${first[xKey]} to ${fmtNumber(last[s.key])} at ${xLabel} ${last[xKey]}`;
}

function uplotSeries(s) {
  const series = { label: s.label, stroke: s.color, width: 1.5, scale: s.scale || "y", spanGaps: true };
  if (s.markers) {
    series.paths = () => null; // points only: marks on the curve, no line between them
    series.points = { show: true, size: 10, width: 2, stroke: s.color, fill: "#ffffff" };
  } else if (s.dots) {
    series.points = { show: true, size: 6, fill: s.color };
  } else {
    series.points = { show: false };
  }
  return series;
}

/**
 * A chart of `series` ([{key, label, color, scale?: "y"|"y2", markers?: bool, dots?: bool}])
 * against `x` ({key, label}); `axes` = {y: label, y2?: label}. Returns {el, update(rows), destroy()}:
 * rows are objects keyed by x.key and the series' keys (null = no point there), sorted by x.
 */
export function lineChart({ title, x, series, axes }) {
  // The title names the figure for assistive technology; the page shows its own heading.
  const plot = h("div", { class: "chart-plot", role: "img", "aria-label": `${title}: no points yet` });
  const tableSlot = h("div", { class: "chart-table" });
  const details = h("details", {}, h("summary", {}, `${title}: data table`), tableSlot);
  const el = h("figure", { class: "chart", dataset: { points: "0" } }, h("figcaption", { class: "visually-hidden" }, title), plot, details);
  let rows = [];
  let u = null;

  const renderTable = () => {
    if (!details.open) return;
    const columns = [{ label: x.label, value: (r) => String(r[x.key]), num: true }].concat(
      series.map((s) => ({ label: s.label, value: (r) => (s.markers && r[s.key] != null ? `yes (${fmtNumber(r[s.key])})` : fmtNumber(r[s.key])), num: true })),
    );
    clear(tableSlot, table(columns, rows, { caption: title, empty: "No points yet." }));
  };
  details.addEventListener("toggle", renderTable);

  const data = () => [rows.map((r) => r[x.key])].concat(series.map((s) => rows.map((r) => r[s.key] ?? null)));
  const width = () => Math.max(320, plot.clientWidth || el.clientWidth || 800);
  const create = () => {
    const scales = { x: { time: false }, y: {} };
    const uAxes = [{ label: x.label }, { label: axes.y, scale: "y" }];
    if (axes.y2) {
      scales.y2 = { range: [0, 1] };
      uAxes.push({ label: axes.y2, scale: "y2", side: 1, grid: { show: false } });
    }
    const opts = { width: width(), height: HEIGHT, scales, axes: uAxes, series: [{ label: x.label }].concat(series.map(uplotSeries)) };
    u = new window.uPlot(opts, data(), plot);
  };
  const observer = new ResizeObserver(() => { if (u) u.setSize({ width: width(), height: HEIGHT }); });
  observer.observe(plot);

  return {
    el,
    update(next) {
      rows = next;
      el.dataset.points = String(rows.length);
      plot.setAttribute("aria-label", `${title}. ${series.map((s) => describe(s, rows, x.key, x.label)).join("; ")}.`);
      if (!u && rows.length && el.isConnected) create();
      else if (u) u.setData(data());
      renderTable();
    },
    destroy() {
      observer.disconnect();
      if (u) u.destroy();
      u = null;
    },
  };
}
