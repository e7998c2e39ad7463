// The project's fine-tuning jobs, newest first, refreshed every 3 s; "Load more" pages on.

import { api } from "../api.js";
import { announce, badge, clear, errorBox, fmtDuration, fmtNumber, fmtTime, h, table } from "../dom.js";
import { poll } from "../poll.js";

const PAGE = 20;
const REFRESH_MS = 3000;

/** The statuses a job never leaves (service/jobs/states.py). */
export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** Seconds from creation to the end (or to now while unfinished). */
export function jobDuration(job) {
  const end = job.finished_at ?? (TERMINAL.has(job.status) ? null : Date.now() / 1000);
  return end === null ? null : end - job.created_at;
}

const COLUMNS = [
  { label: "Job", value: (j) => h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, class: "mono" }, j.id) },
  { label: "Status", value: (j) => badge(j.status) },
  { label: "Base model", value: (j) => j.model },
  { label: "Suffix", value: (j) => j.user_provided_suffix || "—" },
  { label: "Created", value: (j) => fmtTime(j.created_at) },
  { label: "Duration", value: (j) => fmtDuration(jobDuration(j)), num: true },
  { label: "Trained tokens", value: (j) => fmtNumber(j.trained_tokens), num: true },
];

export function render(root) {
  const listSlot = h("div", { class: "jobs-list" });
  const errorSlot = h("div");
  const more = h("button", { type: "button", class: "quiet" }, "Load more");
  const moreSlot = h("div", { class: "actions" });
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Fine-tuning jobs"), h("a", { href: "#/new", class: "button" }, "New job")),
    errorSlot,
    listSlot,
    moreSlot,
  );

  let pages = 1; // how many pages of PAGE jobs are shown; each refresh reloads them all
  let hasMore = false;
  let seen = null; // id -> status, to announce changes
  const controller = new AbortController();

  async function load() {
    const jobs = [];
    let after;
    for (let i = 0; i < pages; i++) {
      const page = await api("/fine_tuning/jobs", { query: { limit: PAGE, after }, signal: controller.signal });
      jobs.push(...page.data);
      hasMore = page.has_more;
      if (!page.has_more || !page.data.length) break;
      after = page.data[page.data.length - 1].id;
    }
    return jobs;
  }

  function show(jobs) {
    if (seen) {
      const changed = jobs.filter((j) => seen.has(j.id) && seen.get(j.id) !== j.status);
      if (changed.length) announce(changed.map((j) => `Job ${j.id} is ${j.status.replaceAll("_", " ")}`).join(". "));
    }
    seen = new Map(jobs.map((j) => [j.id, j.status]));
    // Keep keyboard focus on the same job link across a refresh.
    const focused = listSlot.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
    clear(listSlot, table(COLUMNS, jobs, { caption: "Jobs of this project, newest first", empty: "No fine-tuning jobs yet." }));
    if (focused) listSlot.querySelector(`a[href="${CSS.escape(focused)}"]`)?.focus();
    if (hasMore !== moreSlot.contains(more)) clear(moreSlot, hasMore ? more : null);
  }

  async function refresh() {
    try {
      show(await load());
      clear(errorSlot);
    } catch (err) {
      if (err.name === "AbortError") return;
      clear(errorSlot, errorBox(err));
    }
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    const shown = listSlot.querySelectorAll("tbody a").length;
    pages += 1;
    await refresh();
    more.disabled = false;
    listSlot.querySelectorAll("tbody a")[shown]?.focus(); // keyboard users go on at the first new job
  });

  const stop = poll(refresh, REFRESH_MS);
  return () => {
    stop();
    controller.abort();
  };
}
