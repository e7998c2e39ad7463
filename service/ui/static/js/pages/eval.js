// One eval: two of its runs side by side (#/evals/<id>?a=<run>&b=<run>; ?run=<run> = that run as
// B, the newest other run as A; a run's report_url opens it so): each run's status, model and
// counts, the pass rate per testing criterion, and the items whose verdict differs between the
// two runs (output items joined on datasource_item_id). Refreshes while a run is unfinished.

import { api, listAll } from "../api.js";
import { announce, badge, clear, errorBox, facts, fmtNumber, fmtTime, h, table } from "../dom.js";
import { poll } from "../poll.js";

const UNFINISHED = ["queued", "in_progress"];
const REFRESH_MS = 2000;

/** The eval page's address; `query`: a, b and/or run (run ids). */
export function compareHref(evalId, query = {}) {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v)).toString();
  return `#/evals/${encodeURIComponent(evalId)}${q ? `?${q}` : ""}`;
}

/** The model a run sampled (a jsonl run has none). */
export function runModel(run) {
  return run.model || run.data_source?.model || "";
}

const enc = encodeURIComponent;
// "name · model · status · created" (the model left out where it is the run's name, as by default)
const runLabel = (r) => [r.name, runModel(r) === r.name ? null : runModel(r) || "jsonl", r.status, fmtTime(r.created_at)]
  .filter(Boolean).join(" · ");

/** Which runs to compare: [a, b] ids from the query, else B = the newest, A = the newest other
 *  (one with another model when there is one). */
function chooseRuns(runs, query) {
  const b = query.get("b") || query.get("run") || runs[0].id;
  const bRun = runs.find((r) => r.id === b);
  const others = runs.filter((r) => r.id !== b);
  const a = query.get("a") || (others.find((r) => bRun && runModel(r) !== runModel(bRun)) || others[0] || { id: b }).id;
  return [a, b];
}

export async function render(root, [evalId], query) {
  let ev;
  let runs;
  try {
    [ev, runs] = await Promise.all([api(`/evals/${enc(evalId)}`), listAll(`/evals/${enc(evalId)}/runs`, { order: "desc" })]);
  } catch (err) {
    root.append(h("h1", {}, "Eval"), errorBox(err));
    return undefined;
  }
  const criteriaNames = Object.fromEntries(ev.testing_criteria.map((c) => [c.id ?? c.name, c.name]));
  root.append(
    h("h1", {}, ev.name || ev.id),
    facts([
      ["ID", h("span", { class: "mono" }, ev.id)],
      ["Created", fmtTime(ev.created_at)],
      ["Criteria", ev.testing_criteria.map((c) => `${c.name} (${c.type})`).join(", ")],
      ["Runs", String(runs.length)],
    ]),
    h("p", {}, h("a", { href: "#/evals" }, "All evals")),
  );
  if (!runs.length) {
    root.append(h("p", { class: "muted" }, "This eval has no runs yet."));
    return undefined;
  }
  const [a, b] = chooseRuns(runs, query);
  root.append(runPicker(evalId, runs, a, b));

  const summary = h("div", { id: "ev-summary" });
  const criteria = h("div", { id: "ev-criteria" });
  const diff = h("div", { id: "ev-diff" }, h("p", { class: "muted" }, "The differing items appear once both runs have finished."));
  const errors = h("div", {});
  root.append(errors, h("h2", {}, "Runs"), summary, h("h2", {}, "Pass rate per criterion"), criteria, h("h2", {}, "Items whose verdict differs"), diff);

  let finished = false;
  let stop = null;
  const refresh = async () => {
    if (finished) return;
    let pair;
    try {
      pair = await Promise.all([a, b].map((id) => api(`/evals/${enc(evalId)}/runs/${enc(id)}`)));
    } catch (err) {
      clear(errors, errorBox(err));
      finished = true;
      stop?.();
      return;
    }
    clear(errors);
    clear(summary, summaryTable(pair));
    clear(criteria, criteriaTable(pair, criteriaNames));
    if (pair.some((r) => UNFINISHED.includes(r.status))) return;
    finished = true;
    stop?.();
    try {
      const items = await Promise.all(pair.map((r) => listAll(`/evals/${enc(evalId)}/runs/${enc(r.id)}/output_items`)));
      const changed = differing(items[0], items[1]);
      clear(diff, diffTable(changed, items));
      announce(`Both runs finished; ${changed.length} item${changed.length === 1 ? "" : "s"} differ.`);
    } catch (err) {
      clear(diff, errorBox(err));
    }
  };
  stop = poll(refresh, REFRESH_MS);
  return () => {
    finished = true;
    stop();
  };
}

function runPicker(evalId, runs, a, b) {
  const select = (id, value) => {
    const known = runs.some((r) => r.id === value);
    const sel = h("select", { id }, known ? null : h("option", { value }, value),
      runs.map((r) => h("option", { value: r.id }, runLabel(r))));
    sel.value = value;
    return sel;
  };
  const selA = select("ev-run-a", a);
  const selB = select("ev-run-b", b);
  const go = () => { window.location.hash = compareHref(evalId, { a: selA.value, b: selB.value }); };
  selA.addEventListener("change", go);
  selB.addEventListener("change", go);
  return h("div", { class: "cols ev-pick" },
    h("div", {}, h("label", { for: "ev-run-a" }, "Run A"), selA),
    h("div", {}, h("label", { for: "ev-run-b" }, "Run B"), selB));
}

function rate(passed, of) {
  return of ? passed / of : null;
}

function fmtRate(r, passed, of) {
  return r === null ? "—" : `${(100 * r).toFixed(1)}% (${passed}/${of})`;
}

function summaryTable([ra, rb]) {
  const rows = [
    ["Run", (r) => h("span", {}, r.name, " ", h("span", { class: "mono muted" }, r.id))],
    ["Status", (r) => badge(r.status)],
    ["Model", (r) => h("span", { class: "mono" }, runModel(r) || "— (jsonl)")],
    ["Items", (r) => fmtNumber(r.result_counts.total)],
    ["Passed", (r) => fmtNumber(r.result_counts.passed)],
    ["Failed", (r) => fmtNumber(r.result_counts.failed)],
    ["Errored", (r) => fmtNumber(r.result_counts.errored)],
    ["Pass rate", (r) => fmtRate(rate(r.result_counts.passed, r.result_counts.total), r.result_counts.passed, r.result_counts.total)],
    ["Error", (r) => (r.error ? `${r.error.message} [${r.error.code}]` : "—")],
  ];
  return table([
    { label: "", value: ([label]) => h("span", { class: "muted" }, label) },
    { label: "Run A", value: ([, f]) => f(ra) },
    { label: "Run B", value: ([, f]) => f(rb) },
  ], rows, { caption: "The two runs" });
}

function criteriaTable([ra, rb], names) {
  const byName = (run) => Object.fromEntries((run.per_testing_criteria_results || []).map((c) => [c.testing_criteria, c]));
  const [ca, cb] = [byName(ra), byName(rb)];
  const keys = [...new Set([...Object.keys(ca), ...Object.keys(cb)])];
  const cell = (c) => (c ? fmtRate(rate(c.passed, c.passed + c.failed), c.passed, c.passed + c.failed) : "—");
  const delta = (k) => {
    const [x, y] = [ca[k], cb[k]].map((c) => (c ? rate(c.passed, c.passed + c.failed) : null));
    if (x === null || y === null) return "—";
    const d = 100 * (y - x);
    return `${d > 0 ? "+" : ""}${d.toFixed(1)} pp`;
  };
  return table([
    { label: "Criterion", value: (k) => names[k] || k },
    { label: "Pass rate A", num: true, value: (k) => cell(ca[k]) },
    { label: "Pass rate B", num: true, value: (k) => cell(cb[k]) },
    { label: "Delta (B − A)", num: true, value: delta },
  ], keys, { empty: "No item graded yet." });
}

/** Items of both runs (joined on datasource_item_id) whose verdict differs: [id, itemA, itemB]. */
function differing(itemsA, itemsB) {
  const byId = new Map(itemsB.map((o) => [o.datasource_item_id, o]));
  return itemsA
    .filter((o) => byId.has(o.datasource_item_id) && byId.get(o.datasource_item_id).status !== o.status)
    .map((o) => [o.datasource_item_id, o, byId.get(o.datasource_item_id)])
    .sort((x, y) => x[0] - y[0]);
}

function outputText(item) {
  const sample = item.sample || {};
  if (sample.error?.message) return `error: ${sample.error.message}`;
  return (sample.output || []).map((m) => m.content ?? "").join("\n");
}

function shown(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function diffTable(changed, [itemsA, itemsB]) {
  const answer = (o) => h("div", { class: "ev-answer" }, badge(o.status), h("pre", { class: "ev-text" }, outputText(o)));
  const both = new Set(itemsB.map((o) => o.datasource_item_id));
  const common = itemsA.filter((o) => both.has(o.datasource_item_id)).length;
  return [
    h("p", {}, `${changed.length} of ${common} items graded in both runs differ.`),
    table([
      { label: "Item", num: true, value: ([id]) => String(id) },
      { label: "Input and reference", value: ([, o]) => facts(Object.entries(o.datasource_item).map(([k, v]) => [k, shown(v)])) },
      { label: "Run A output and verdict", value: ([, o]) => answer(o) },
      { label: "Run B output and verdict", value: ([, , o]) => answer(o) },
    ], changed, { caption: "Items whose verdict differs", empty: "No item's verdict differs between the two runs." }),
  ];
}
