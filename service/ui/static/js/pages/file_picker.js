// A JSONL file for a job: upload one (with a progress bar) or pick one already uploaded.
// Used twice by the new-job page (training file, validation file); calls onChange(file|null).

import { listAll, uploadFile } from "../api.js";
import { announce, clear, errorBox, fmtBytes, fmtTime, h } from "../dom.js";

/** `prefix` makes the element ids; `optional` adds a "None" choice to the existing files. */
export function filePicker({ prefix, label, optional = false, onChange }) {
  const input = h("input", { id: `${prefix}-upload`, type: "file", accept: ".jsonl,application/jsonl,application/x-ndjson" });
  const progress = h("progress", { id: `${prefix}-progress`, max: 1, value: 0, hidden: true });
  const progressLabel = h("label", { for: `${prefix}-progress`, hidden: true }, `${label}: upload progress`);
  const progressText = h("span", { class: "muted", "aria-live": "polite" });
  const select = h("select", { id: `${prefix}-existing` });
  const status = h("div");
  let files = [];

  function fillSelect(chosen = "") {
    clear(
      select,
      h("option", { value: "" }, optional ? "None" : "Choose a file…"),
      files.map((f) => h("option", { value: f.id, selected: f.id === chosen }, `${f.filename} (${f.id}, ${fmtBytes(f.bytes)}, ${fmtTime(f.created_at)})`)),
    );
  }

  async function load(chosen) {
    files = await listAll("/files", { purpose: "fine-tune", order: "desc" }, { max: 500 });
    fillSelect(chosen);
  }

  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    clear(status);
    progress.hidden = progressLabel.hidden = false;
    progress.max = file.size || 1;
    progress.value = 0;
    progressText.textContent = `Uploading ${file.name}…`;
    announce(`Uploading ${file.name}`);
    try {
      const uploaded = await uploadFile(file, "fine-tune", (loaded, total) => {
        progress.max = total || 1;
        progress.value = loaded;
        progressText.textContent = `${fmtBytes(loaded)} of ${fmtBytes(total)}`;
      });
      progressText.textContent = `Uploaded ${uploaded.filename} as ${uploaded.id} (${fmtBytes(uploaded.bytes)}).`;
      announce(`Uploaded ${uploaded.filename}`);
      files = [uploaded, ...files.filter((f) => f.id !== uploaded.id)];
      fillSelect(uploaded.id);
      onChange(uploaded);
    } catch (err) {
      progressText.textContent = "";
      progress.hidden = progressLabel.hidden = true;
      clear(status, errorBox(err));
      announce("The upload failed.");
    }
  });

  select.addEventListener("change", () => {
    clear(status);
    onChange(files.find((f) => f.id === select.value) ?? null);
  });

  const element = h(
    "div", { class: "file-picker" },
    h("label", { for: input.id }, `${label}: upload a JSONL file`),
    input,
    h("div", { class: "upload-progress" }, progressLabel, progress, progressText),
    h("label", { for: select.id }, optional ? `${label}: or pick an uploaded file (optional)` : `${label}: or pick an uploaded file`),
    select,
    status,
  );
  return { element, load, chosen: () => select.value || null };
}
