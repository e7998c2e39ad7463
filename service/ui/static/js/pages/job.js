// One fine-tuning job: status and its timeline, pause/resume/cancel, the resolved
// hyperparameters, the error, the loss curves, the checkpoints, the result CSV and the events.
// Refreshed every 1.5 s until the job is finished; events are fetched newest first and only
// down to the first one already shown.

import { api, downloadFile, listAll } from "../api.js";
import { lineChart } from "../chart.js";
import { announce, badge, clear, copyButton, errorBox, facts, fmtDuration, fmtNumber, fmtTime, h, table } from "../dom.js";
import { poll } from "../poll.js";
import { jobDuration, TERMINAL } from "./jobs.js";

const REFRESH_MS = 1500;
const SHOWN_EVENTS = 200;
const STAGES = ["validating_files", "queued", "running"];

// What each action may do from each status (service/jobs/states.py and service/jobs/service.py).
const ACTIONS = [
  { name: "pause", label: "Pause", from: ["queued", "running"], class: "quiet" },
  { name: "resume", label: "Resume", from: ["paused"], class: "quiet" },
  { name: "cancel", label: "Cancel", from: ["validating_files", "queued", "running", "pausing", "paused"], class: "danger" },
];

/** The statuses the job went through, as far as its object tells, and where it is now. */
function stages(job) {
  const s = job.status;
  if (STAGES.includes(s)) return STAGES.concat("succeeded");
  if (s === "pausing" || s === "paused") return [...STAGES, "pausing", "paused"].slice(0, s === "pausing" ? 4 : 5);
  if (s === "succeeded") return STAGES.concat(s);
  // failed or cancelled: where it stopped (a file error stops it while validating).
  const reached = job.error?.param?.endsWith("_file") ? 1 : job.trained_tokens ? 3 : job.hyperparameters?.n_epochs !== "auto" ? 2 : 1;
  return STAGES.slice(0, reached).concat(s);
}

function timeline(job) {
  const list = stages(job);
  const at = list.indexOf(job.status);
  return h("ol", { class: "timeline", "aria-label": "Status timeline" }, list.map((s, i) =>
    h("li", { class: i < at ? "done" : i === at ? "current" : null, "aria-current": i === at ? "step" : null }, s.replaceAll("_", " "))));
}

function hyperparameters(job) {
  const resolved = job.method?.[job.method?.type]?.hyperparameters || job.hyperparameters || {};
  const pairs = Object.entries(resolved).map(([k, v]) => [k, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)]);
  return pairs.length ? facts(pairs) : h("p", { class: "muted" }, "None.");
}

/** One row per step from the metrics events (a resumed run's newer event for a step wins),
 *  with the checkpoints marked at their steps. */
function curveRows(events, checkpoints) {
  const bySteps = new Map();
  for (const e of [...events].reverse()) {
    if (e.type !== "metrics" || !e.data || typeof e.data.step !== "number") continue;
    bySteps.set(e.data.step, e.data);
  }
  const marks = new Map(checkpoints.map((c) => [c.step_number, c.metrics?.train_loss ?? null]));
  return [...bySteps.keys()].sort((a, b) => a - b).map((step) => {
    const d = bySteps.get(step);
    return {
      step,
      train_loss: d.train_loss ?? null,
      train_mean_token_accuracy: d.train_mean_token_accuracy ?? null,
      valid_loss: d.valid_loss ?? null,
      checkpoint: marks.has(step) ? (marks.get(step) ?? d.train_loss ?? null) : null,
    };
  });
}

function playgroundLink(model) {
  return h("a", { href: `#/playground?model=${encodeURIComponent(model)}`, class: "button quiet" }, "Open in playground");
}

function checkpointTable(checkpoints) {
  const m = (key) => (c) => fmtNumber(c.metrics?.[key]);
  return table([
    { label: "Step", value: (c) => String(c.step_number), num: true },
    { label: "Created", value: (c) => fmtTime(c.created_at) },
    { label: "Training loss", value: m("train_loss"), num: true },
    { label: "Accuracy", value: m("train_mean_token_accuracy"), num: true },
    { label: "Validation loss", value: m("valid_loss"), num: true },
    { label: "Model", value: (c) => h("span", { class: "mono" }, c.fine_tuned_model_checkpoint) },
    { label: "Use", value: (c) => h("span", { class: "actions tight" },
      copyButton(c.fine_tuned_model_checkpoint, "Copy name"),
      playgroundLink(c.fine_tuned_model_checkpoint)) },
  ], checkpoints, { caption: "Checkpoints, newest first", empty: "No checkpoints yet." });
}

function eventTable(events) {
  const shown = events.slice(0, SHOWN_EVENTS);
  return [
    events.length > shown.length ? h("p", { class: "hint" }, `The newest ${shown.length} of ${events.length} events.`) : null,
    h("div", { class: "events" }, table([
      { label: "Time", value: (e) => fmtTime(e.created_at) },
      { label: "Level", value: (e) => e.level },
      { label: "Message", value: (e) => e.message },
    ], shown, { caption: "Events, newest first", empty: "No events yet." })),
  ];
}

export function render(root, [jobId]) {
  const base = `/fine_tuning/jobs/${encodeURIComponent(jobId)}`;
  const controller = new AbortController();
  const signal = controller.signal;
  const slots = Object.fromEntries(
    ["error", "status", "actionError", "actions", "jobError", "facts", "hyper", "checkpoints", "result", "events"].map((k) => [k, h("div")]),
  );
  const chart = lineChart({
    title: "Loss curves",
    x: { key: "step", label: "step" },
    axes: { y: "loss", y2: "accuracy" },
    series: [
      { key: "train_loss", label: "Training loss", color: "#0a58ca" },
      { key: "valid_loss", label: "Validation loss", color: "#b42318", dots: true },
      { key: "train_mean_token_accuracy", label: "Training accuracy", color: "#116329", scale: "y2" },
      { key: "checkpoint", label: "Checkpoint", color: "#7d4e00", markers: true },
    ],
  });
  const heading = h("h1", {}, "Job ", h("span", { class: "mono" }, jobId));
  root.append(heading, slots.error);

  let job = null;
  let events = []; // newest first
  let checkpoints = [];
  let busy = false;
  let laidOut = false;
  const drawn = {}; // what each part was last drawn from: redraw (losing focus) only on a change
  function changed(part, key) {
    if (drawn[part] === key) return false;
    drawn[part] = key;
    return true;
  }

  function layout() {
    laidOut = true;
    root.append(
      slots.status, slots.actions, slots.actionError, slots.jobError, slots.facts,
      h("section", { "aria-labelledby": "curves-h" }, h("h2", { id: "curves-h" }, "Loss curves"), chart.el),
      h("section", { "aria-labelledby": "ckpt-h" }, h("h2", { id: "ckpt-h" }, "Checkpoints"), slots.checkpoints),
      h("div", { class: "cols" },
        h("section", { "aria-labelledby": "hp-h" }, h("h2", { id: "hp-h" }, "Hyperparameters"), slots.hyper),
        h("section", { "aria-labelledby": "res-h" }, h("h2", { id: "res-h" }, "Results"), slots.result)),
      h("section", { "aria-labelledby": "ev-h" }, h("h2", { id: "ev-h" }, "Events"), slots.events),
    );
  }

  async function act(action) {
    busy = true;
    showActions();
    clear(slots.actionError);
    try {
      job = await api(`${base}/${action.name}`, { method: "POST", signal });
      announce(`Job ${job.id} is ${job.status.replaceAll("_", " ")}`);
      showJob();
    } catch (err) {
      if (err.name !== "AbortError") clear(slots.actionError, errorBox(err));
    } finally {
      busy = false;
      showActions();
    }
  }

  function showActions() {
    if (!changed("actions", `${job.status}|${busy}`)) return;
    const allowed = ACTIONS.filter((a) => a.from.includes(job.status));
    clear(slots.actions, allowed.length
      ? h("div", { class: "actions" }, allowed.map((a) =>
        h("button", { type: "button", class: a.class, disabled: busy, onclick: () => act(a) }, busy ? `${a.label}…` : a.label)))
      : null);
  }

  function showJob() {
    showActions();
    if (!changed("job", JSON.stringify(job))) return;
    heading.replaceChildren("Job ", h("span", { class: "mono" }, job.id), job.user_provided_suffix ? ` (${job.user_provided_suffix})` : "");
    clear(slots.status, h("p", { class: "job-status" }, "Status: ", badge(job.status)), timeline(job));
    clear(slots.jobError, job.error ? errorBox(job.error) : null);
    clear(slots.facts, facts([
      ["Base model", job.model],
      ["Fine-tuned model", job.fine_tuned_model ? [h("span", { class: "mono" }, job.fine_tuned_model), " ", copyButton(job.fine_tuned_model, "Copy name"), " ", playgroundLink(job.fine_tuned_model)] : null],
      ["Method", job.method?.type],
      ["Created", fmtTime(job.created_at)],
      ["Finished", job.finished_at ? fmtTime(job.finished_at) : null],
      ["Duration", fmtDuration(jobDuration(job))],
      ["Estimated finish", job.estimated_finish ? fmtTime(job.estimated_finish) : null],
      ["Trained tokens", fmtNumber(job.trained_tokens)],
      ["Training file", h("span", { class: "mono" }, job.training_file)],
      ["Validation file", job.validation_file ? h("span", { class: "mono" }, job.validation_file) : null],
      ["Seed", String(job.seed)],
    ]));
    clear(slots.hyper, hyperparameters(job));
    const csv = job.result_files?.[0];
    const failure = h("div");
    const download = () => { clear(failure); downloadFile(csv, "step_metrics.csv").catch((err) => clear(failure, errorBox(err))); };
    clear(slots.result, csv
      ? [h("button", { type: "button", class: "quiet", onclick: download }, "Download result CSV"), failure]
      : h("p", { class: "muted" }, "The step metrics CSV appears when the job ends."));
  }

  async function newEvents() {
    if (!events.length) return listAll(`${base}/events`, { limit: 1000 }, { signal });
    const known = new Set(events.map((e) => e.id));
    const fresh = [];
    let after;
    for (;;) {
      const page = await api(`${base}/events`, { query: { limit: 100, after }, signal });
      const cut = page.data.findIndex((e) => known.has(e.id));
      fresh.push(...(cut < 0 ? page.data : page.data.slice(0, cut)));
      if (cut >= 0 || !page.has_more || !page.data.length) return fresh;
      after = page.data[page.data.length - 1].id;
    }
  }

  async function refresh() {
    const was = job?.status;
    try {
      job = await api(base, { signal });
      const [fresh, ckpts] = await Promise.all([newEvents(), listAll(`${base}/checkpoints`, {}, { signal })]);
      events = fresh.concat(events);
      checkpoints = ckpts;
    } catch (err) {
      if (err.name === "AbortError") return;
      clear(slots.error, errorBox(err));
      if (!job || err.status === 404) stop(); // no such job (or not this project's)
      return;
    }
    clear(slots.error);
    if (!laidOut) layout();
    if (was && was !== job.status) announce(`Job ${job.id} is ${job.status.replaceAll("_", " ")}`);
    if (!busy) showJob();
    if (changed("curve", `${events.length}|${checkpoints.map((c) => c.id).join()}`)) {
      chart.update(curveRows(events, checkpoints));
      clear(slots.checkpoints, checkpointTable(checkpoints));
      clear(slots.events, eventTable(events));
    }
    if (TERMINAL.has(job.status)) stop();
  }

  const stop = poll(refresh, REFRESH_MS);
  return () => {
    stop();
    controller.abort();
    chart.destroy();
  };
}
