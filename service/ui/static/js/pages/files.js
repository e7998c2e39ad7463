// The project's files, newest first (GET /v1/files), PAGE at a time with "Load more";
// download (GET /v1/files/{id}/content) and delete (DELETE /v1/files/{id}) after a confirm step.

import { api, downloadFile } from "../api.js";
import { announce, clear, confirmStep, errorBox, fmtBytes, fmtTime, h, table } from "../dom.js";

const PAGE = 20;

function actions(file, onDeleted, errorSlot) {
  const cell = h("div", { class: "actions tight" });
  const download = h("button", { type: "button", class: "quiet", "aria-label": `Download ${file.filename}` }, "Download");
  download.addEventListener("click", async () => {
    clear(errorSlot);
    try {
      await downloadFile(file.id, file.filename);
      announce(`Downloading ${file.filename}`);
    } catch (err) {
      clear(errorSlot, errorBox(err));
    }
  });
  const del = h("button", { type: "button", class: "danger", "aria-label": `Delete ${file.filename}` }, "Delete");
  del.addEventListener("click", () =>
    confirmStep(cell, `Delete ${file.filename} (${file.id})? `, "Yes, delete", async () => {
      await api(`/files/${encodeURIComponent(file.id)}`, { method: "DELETE" });
      announce(`Deleted ${file.filename}`);
      onDeleted(file);
    }),
  );
  cell.append(download, del);
  return cell;
}

export async function render(root) {
  const errorSlot = h("div");
  const listSlot = h("div");
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "Load more");
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Files"), h("a", { href: "#/new", class: "button" }, "Upload for a new job")),
    errorSlot,
    listSlot,
    h("div", { class: "actions" }, more),
  );

  let files = [];
  const columns = [
    { label: "File", value: (f) => h("span", { class: "mono" }, f.id) },
    { label: "Name", value: (f) => f.filename },
    { label: "Purpose", value: (f) => f.purpose },
    { label: "Size", value: (f) => fmtBytes(f.bytes), num: true },
    { label: "Created", value: (f) => fmtTime(f.created_at) },
    { label: "Actions", value: (f) => actions(f, removed, errorSlot) },
  ];
  function show() {
    clear(listSlot, table(columns, files, { caption: `${files.length} file${files.length === 1 ? "" : "s"} shown, newest first`, empty: "No files yet: upload one on the New job page." }));
  }
  function removed(file) {
    files = files.filter((f) => f.id !== file.id);
    show();
  }
  async function loadPage() {
    more.disabled = true;
    try {
      const after = files.length ? files[files.length - 1].id : undefined;
      const page = await api("/files", { query: { limit: PAGE, order: "desc", after } });
      files = files.concat(page.data);
      more.hidden = !page.has_more;
      show();
    } catch (err) {
      clear(errorSlot, errorBox(err));
    }
    more.disabled = false;
  }
  more.addEventListener("click", async () => {
    await loadPage();
    announce(`${files.length} files shown`);
  });
  await loadPage();
}
