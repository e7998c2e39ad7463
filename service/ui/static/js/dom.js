// DOM helpers. Text always goes in as text nodes (never innerHTML): file names, suffixes and
// model outputs are user data. No inline style attributes (the CSP forbids them).

/** h("a", {href: "#/x", class: "quiet", onclick: fn}, "text", child, ...) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const pad = (n) => String(n).padStart(2, "0");

/** A unix time (seconds) as local "YYYY-MM-DD HH:MM:SS". */
export function fmtTime(unix) {
  if (unix === null || unix === undefined) return "—";
  const d = new Date(unix * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Seconds as "1h 02m", "3m 05s", "42s". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${s}s`;
}

export function fmtNumber(n, digits = 4) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  if (Number.isInteger(n)) return n.toLocaleString("en-US");
  return Number(n).toPrecision(digits);
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, String(status).replaceAll("_", " "));
}

/** A table: columns = [{label, value: row => text|Node, num?: bool}]. */
export function table(columns, rows, { caption, empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.value(row)))))),
  );
}

/** A definition list of [term, value] pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

/** Announce a message to screen readers (and keep it visible nowhere). */
export function announce(text) {
  const live = document.getElementById("live");
  if (live) live.textContent = text;
}

/** An error box (role=alert) for an ApiError or any Error. */
export function errorBox(err) {
  const parts = [err.message || String(err)];
  if (err.param) parts.push(` (field: ${err.param})`);
  if (err.code) parts.push(` [${err.code}]`);
  return h("div", { class: "alert", role: "alert" }, parts.join(""));
}

/** A button that copies `text` to the clipboard and says so. */
export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "quiet", "aria-label": `${label}: ${text}` }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    announce(button.textContent);
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

/** An in-page confirm step (no window.confirm): `holder`'s children give way to the question,
 *  a danger button `confirmLabel` and "Cancel" (focused; it puts the children back). The
 *  confirm button runs `onConfirm` (may be async); an error it throws is shown in `holder`. */
export function confirmStep(holder, question, confirmLabel, onConfirm) {
  const before = [...holder.childNodes];
  const yes = h("button", { type: "button", class: "danger" }, confirmLabel);
  const no = h("button", { type: "button", class: "quiet" }, "Cancel");
  no.addEventListener("click", () => {
    holder.replaceChildren(...before);
    before.find((n) => n instanceof HTMLElement)?.focus();
  });
  yes.addEventListener("click", async () => {
    yes.disabled = no.disabled = true;
    try {
      await onConfirm();
    } catch (err) {
      holder.replaceChildren(...before, errorBox(err));
    }
  });
  holder.replaceChildren(h("span", { class: "confirm-question" }, question), yes, no);
  no.focus();
}
