// The project's evals (GET /v1/evals), each with its runs (GET /v1/evals/{id}/runs): how many,
// the latest one's status and model, and links to compare them.

import { api, listAll } from "../api.js";
import { badge, errorBox, fmtTime, h, table } from "../dom.js";
import { compareHref, runModel } from "./eval.js";

export async function render(root) {
  root.append(
    h("h1", {}, "Evals"),
    h("p", { class: "hint" }, "Create evals and runs with the API (client.evals.create, client.evals.runs.create) or `hone eval compare`; compare two runs of an eval here."),
  );
  let evals;
  try {
    evals = await listAll("/evals", { order: "desc" });
  } catch (err) {
    root.append(errorBox(err));
    return;
  }
  const runs = await Promise.all(evals.map((ev) => listAll(`/evals/${encodeURIComponent(ev.id)}/runs`, { order: "desc" }).catch((err) => err)));
  const rows = evals.map((ev, i) => ({ ev, runs: runs[i] }));
  root.append(table([
    { label: "Eval", value: ({ ev }) => h("a", { href: compareHref(ev.id) }, ev.name || ev.id) },
    { label: "ID", value: ({ ev }) => h("span", { class: "mono" }, ev.id) },
    { label: "Created", value: ({ ev }) => fmtTime(ev.created_at) },
    { label: "Criteria", value: ({ ev }) => ev.testing_criteria.map((c) => c.name).join(", ") },
    { label: "Runs", num: true, value: ({ runs: r }) => (r instanceof Error ? errorBox(r) : String(r.length)) },
    { label: "Latest runs", value: ({ ev, runs: r }) => (r instanceof Error ? "—" : latest(ev, r)) },
  ], rows, { caption: `${evals.length} eval${evals.length === 1 ? "" : "s"}`, empty: "No evals in this project yet." }));
}

/** The two newest runs, each a link to the comparison with it as run B, and a link comparing both. */
function latest(ev, runs) {
  if (!runs.length) return h("span", { class: "muted" }, "No runs");
  const [b, a] = runs;
  return h("ul", { class: "ev-runs" },
    runs.slice(0, 2).map((r) => h("li", {}, badge(r.status), " ", h("a", { href: compareHref(ev.id, { run: r.id }) }, runModel(r) || r.name))),
    a ? h("li", {}, h("a", { href: compareHref(ev.id, { a: a.id, b: b.id }) }, "Compare these two")) : null);
}
