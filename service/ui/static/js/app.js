// The dashboard's shell: the route table, the navigation, sign-in and sign-out.
// A page is a module exporting render(root, params, query) that fills `root` and may return a
// function the shell calls when the page is left (to stop its refreshes).

import { session } from "./api.js";
import { clear, h } from "./dom.js";
import * as evalPage from "./pages/eval.js";
import * as evals from "./pages/evals.js";
import * as files from "./pages/files.js";
import * as job from "./pages/job.js";
import * as jobs from "./pages/jobs.js";
import * as models from "./pages/models.js";
import * as newJob from "./pages/new_job.js";
import * as playground from "./pages/playground.js";
import * as signin from "./pages/signin.js";

// One table: the hash pattern, the page, the navigation entry it highlights, the page title.
const ROUTES = [
  { pattern: /^\/jobs$/, page: jobs, nav: "jobs", title: "Fine-tuning jobs" },
  { pattern: /^\/jobs\/([^/]+)$/, page: job, nav: "jobs", title: "Job" },
  { pattern: /^\/new$/, page: newJob, nav: "new", title: "New fine-tuning job" },
  { pattern: /^\/files$/, page: files, nav: "files", title: "Files" },
  { pattern: /^\/models$/, page: models, nav: "models", title: "Models" },
  { pattern: /^\/playground$/, page: playground, nav: "playground", title: "Playground" },
  { pattern: /^\/evals$/, page: evals, nav: "evals", title: "Evals" },
  { pattern: /^\/evals\/([^/]+)$/, page: evalPage, nav: "evals", title: "Eval" },
];
const NAV = [
  ["jobs", "Jobs", "#/jobs"],
  ["new", "New job", "#/new"],
  ["files", "Files", "#/files"],
  ["models", "Models", "#/models"],
  ["playground", "Playground", "#/playground"],
  ["evals", "Evals", "#/evals"],
];
const HOME = "#/jobs";

let leave = null;
let visits = 0; // counts route() calls, so a page left mid-render is cleaned up

/** "#/jobs/x?a=1" -> ["/jobs/x", URLSearchParams("a=1")] */
function parseHash() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?", 2);
  return [path, new URLSearchParams(search)];
}

/** The route's groups percent-decoded; null when one is not valid percent-encoding ("%", "%E0"). */
function decodeAll(groups) {
  try {
    return groups.map(decodeURIComponent);
  } catch {
    return null;
  }
}

function renderNav(current) {
  const nav = document.getElementById("nav");
  const signedIn = Boolean(session.key());
  document.getElementById("sign-out").hidden = !signedIn;
  clear(nav, signedIn ? NAV.map(([id, label, href]) => h("a", { href, "aria-current": id === current ? "page" : null }, label)) : []);
}

async function route() {
  const visit = ++visits;
  if (leave) {
    leave();
    leave = null;
  }
  const main = document.getElementById("main");
  const [path, query] = parseHash();
  if (!session.key()) {
    renderNav(null);
    document.title = "Sign in · hone";
    clear(main);
    signin.render(main, [], query);
    return;
  }
  const match = ROUTES.map((r) => [r, path.match(r.pattern)]).find(([, m]) => m);
  const params = match && decodeAll(match[1].slice(1));
  if (!params) {
    window.location.replace(HOME);
    return;
  }
  const [r] = match;
  renderNav(r.nav);
  document.title = `${r.title} · hone`;
  // Each visit renders into its own element: a page left while it awaited data writes into a
  // detached element, never into the next page.
  const root = h("div");
  clear(main, root);
  const cleanup = await r.page.render(root, params, query);
  if (typeof cleanup !== "function") return;
  if (visit === visits) leave = cleanup;
  else cleanup(); // the page was left while it rendered: stop what it started
}

window.addEventListener("hashchange", route);
window.addEventListener("hone:signed-in", () => {
  // Stay on the page asked for before signing in; otherwise the jobs (hashchange routes).
  if (ROUTES.some((r) => r.pattern.test(parseHash()[0]))) route();
  else window.location.hash = HOME;
});
window.addEventListener("hone:signed-out", () => route());
// The skip link moves focus to the page without touching the hash (the router owns it).
document.querySelector("a.skip").addEventListener("click", (e) => {
  e.preventDefault();
  document.getElementById("main").focus();
});
document.getElementById("sign-out").addEventListener("click", () => {
  session.signOut();
  route();
});
route();
