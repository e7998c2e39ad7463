// The models this project can use (GET /v1/models): the server's base models and the
// project's fine-tuned models (names starting "ft:"), each with its name to copy and a link to
// the playground; a fine-tuned model can be deleted (DELETE /v1/models/{id}) after a confirm step.

import { api, listAll } from "../api.js";
import { announce, clear, confirmStep, copyButton, errorBox, fmtTime, h, table } from "../dom.js";

const isFineTuned = (m) => m.id.startsWith("ft:");

function actions(model, onDeleted) {
  const cell = h("div", { class: "actions tight" });
  cell.append(
    copyButton(model.id, "Copy name"),
    h("a", { href: `#/playground?model=${encodeURIComponent(model.id)}`, class: "button quiet" }, "Open in playground"),
  );
  if (isFineTuned(model)) {
    const del = h("button", { type: "button", class: "danger", "aria-label": `Delete ${model.id}` }, "Delete");
    del.addEventListener("click", () =>
      confirmStep(cell, `Delete ${model.id}? It can no longer be used for inference. `, "Yes, delete", async () => {
        await api(`/models/${encodeURIComponent(model.id)}`, { method: "DELETE" });
        announce(`Deleted ${model.id}`);
        onDeleted(model);
      }),
    );
    cell.append(del);
  }
  return cell;
}

export async function render(root) {
  const errorSlot = h("div");
  const baseSlot = h("div");
  const tunedSlot = h("div");
  root.append(
    h("h1", {}, "Models"),
    errorSlot,
    h("h2", { id: "base-models" }, "Base models"),
    baseSlot,
    h("h2", { id: "fine-tuned-models" }, "Fine-tuned models"),
    tunedSlot,
  );

  let models = [];
  const columns = [
    { label: "Model", value: (m) => h("span", { class: "mono" }, m.id) },
    { label: "Owned by", value: (m) => m.owned_by },
    { label: "Created", value: (m) => fmtTime(m.created) },
    { label: "Actions", value: (m) => actions(m, removed) },
  ];
  function show() {
    clear(baseSlot, table(columns, models.filter((m) => !isFineTuned(m)), { caption: "The server's base models", empty: "This server lists no base models." }));
    clear(tunedSlot, table(columns, models.filter(isFineTuned), { caption: "This project's fine-tuned models and checkpoints, and those shared with it", empty: "No fine-tuned models yet: start a job on the New job page." }));
  }
  function removed(model) {
    models = models.filter((m) => m.id !== model.id);
    show();
  }
  try {
    models = await listAll("/models");
    show();
  } catch (err) {
    clear(errorSlot, errorBox(err));
  }
}
