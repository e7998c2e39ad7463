// A new fine-tuning job: the training file (uploaded with a progress bar, or picked), its
// verdict from hone's dataset check (POST /v1/fine_tuning/dataset_checks: the job validator's
// own rules), the base model, the method and its hyperparameters as GET /v1/fine_tuning/methods
// describes them ("auto" explained there, not here), suffix, seed, an optional validation file;
// "Start job" creates it (POST /v1/fine_tuning/jobs) and opens its page.

import { api, listAll } from "../api.js";
import { announce, clear, errorBox, facts, fmtNumber, h, table } from "../dom.js";
import { filePicker } from "./file_picker.js";

/** The text of a hyperparameter input as the JSON value the API takes ("" = leave it out). */
export function parseValue(text) {
  const t = text.trim();
  if (t === "") return undefined;
  if (t === "auto") return "auto";
  try {
    return JSON.parse(t);
  } catch {
    return t; // a bare word such as "epoch" or "all-linear"
  }
}

const shown = (value) => (value === null ? "null" : typeof value === "string" ? value : JSON.stringify(value));

function hyperparameterField(hp, idPrefix) {
  const id = `${idPrefix}-${hp.name}`;
  const helpId = `${id}-help`;
  const choices = hp.json_schema.enum;
  const control = choices
    ? h("select", { id, "aria-describedby": helpId }, choices.map((c) => h("option", { value: c, selected: c === hp.default }, c)))
    : h("input", { id, type: "text", value: shown(hp.default), spellcheck: "false", "aria-describedby": helpId });
  const resolved = h("span", { class: "auto-value" });
  const help = h(
    "p", { class: "field-help", id: helpId },
    `${hp.description}. Values: ${hp.values}.`,
    hp.auto ? [" ", h("strong", {}, "auto"), `: ${hp.auto}.`, " ", resolved] : null,
  );
  return {
    name: hp.name,
    element: h("div", { class: "hp-field" }, h("label", { for: id }, hp.name), control, help),
    value: () => parseValue(control.value),
    isDefault: () => control.value.trim() === shown(hp.default),
    showAuto: (autoValues, n) => {
      resolved.textContent = hp.auto && autoValues && hp.name in autoValues ? `For this file's ${fmtNumber(n)} examples: ${autoValues[hp.name]}.` : "";
    },
  };
}

function verdictView(check) {
  const head = check.valid
    ? h("p", { class: "notice verdict-valid" }, `Valid: ${fmtNumber(check.n_examples)} examples for ${check.method} on ${check.model}.`)
    : h("p", { class: "alert verdict-invalid" }, `Not valid: a job with this file would fail validation${check.truncated ? ` (the first ${check.errors.length} problems are shown)` : ""}.`);
  const counts = facts([
    ["Examples", fmtNumber(check.n_examples)],
    ["Tokens", fmtNumber(check.n_tokens)],
    ["Longest example", `${fmtNumber(check.max_example_tokens)} tokens (limit ${fmtNumber(check.max_tokens)})`],
    ["Minimum examples", fmtNumber(check.min_examples)],
  ]);
  const errors = check.errors.length
    ? table(
      [
        { label: "Line", value: (e) => (e.line === null ? "whole file" : String(e.line)), num: true },
        { label: "Field", value: (e) => e.where ?? "—" },
        { label: "Code", value: (e) => h("code", {}, e.code) },
        { label: "Message", value: (e) => e.message },
      ],
      check.errors,
      { caption: "First problems, in line order" },
    )
    : null;
  return h("section", { class: "verdict", "aria-label": "Dataset check" }, head, counts, errors);
}

export async function render(root) {
  root.append(h("h1", {}, "New fine-tuning job"));
  let methods;
  let models;
  try {
    [methods, models] = await Promise.all([api("/fine_tuning/methods"), listAll("/models")]);
  } catch (err) {
    root.append(errorBox(err));
    return undefined;
  }
  const bases = models.filter((m) => !m.id.startsWith("ft:"));
  const tuned = models.filter((m) => m.id.startsWith("ft:") && !m.id.includes(":ckpt-step-"));
  const controller = new AbortController();

  let training = null;
  let check = null;
  let fields = [];
  const verdictSlot = h("div", { "aria-live": "polite" });
  const hpSlot = h("div");
  const errorSlot = h("div");

  const modelSelect = h(
    "select", { id: "base-model", "aria-describedby": "base-model-help" },
    h("optgroup", { label: "Base models" }, bases.map((m) => h("option", { value: m.id }, m.id))),
    tuned.length ? h("optgroup", { label: "Your fine-tuned models (continue training)" }, tuned.map((m) => h("option", { value: m.id }, m.id))) : null,
  );
  const methodHelp = h("p", { class: "field-help", id: "method-help" });
  const methodSelect = h(
    "select", { id: "method", "aria-describedby": "method-help" },
    methods.data.map((m) => h("option", { value: m.name, selected: m.default }, m.name)),
  );
  const suffix = h("input", { id: "suffix", type: "text", maxlength: 64, spellcheck: "false", "aria-describedby": "suffix-help" });
  const seed = h("input", { id: "seed", type: "number", min: 0, max: 2147483647, step: 1, "aria-describedby": "seed-help" });
  const start = h("button", { type: "submit", disabled: true }, "Start job");
  const startHint = h("p", { class: "field-help", id: "start-help" }, "Choose a training file first.");
  start.setAttribute("aria-describedby", "start-help");

  const method = () => methods.data.find((m) => m.name === methodSelect.value);

  function updateStart() {
    start.disabled = !training || (check !== null && !check.valid);
    startHint.textContent = !training
      ? "Choose a training file first."
      : check && !check.valid
        ? "The training file has problems for this model and method (see above)."
        : "";
  }

  function showAuto() {
    for (const f of fields) f.showAuto(check?.valid ? check.auto_hyperparameters : null, check?.n_examples);
  }

  function renderHyperparameters() {
    const m = method();
    methodHelp.textContent = `${m.summary}. Data format: ${m.data_format}.`;
    fields = m.hyperparameters.map((hp) => hyperparameterField(hp, `hp-${m.name}`));
    const openai = fields.filter((f) => m.hyperparameters.find((hp) => hp.name === f.name).auto);
    const extended = fields.filter((f) => !openai.includes(f));
    clear(
      hpSlot,
      h("div", { class: "grid hp-grid" }, openai.map((f) => f.element)),
      h("details", { class: "hp-more" }, h("summary", {}, "More hyperparameters (hone's extensions)"), h("div", { class: "grid hp-grid" }, extended.map((f) => f.element))),
    );
    showAuto();
  }

  let checking = 0;
  async function runCheck() {
    if (!training) return;
    const mine = ++checking;
    check = null;
    updateStart();
    clear(verdictSlot, h("p", { class: "muted" }, `Checking ${training.filename}…`));
    try {
      const result = await api("/fine_tuning/dataset_checks", {
        method: "POST",
        body: { training_file: training.id, model: modelSelect.value, method: { type: methodSelect.value } },
        signal: controller.signal,
      });
      if (mine !== checking) return;
      check = result;
      clear(verdictSlot, verdictView(result));
      announce(result.valid ? `The training file is valid: ${result.n_examples} examples.` : `The training file has ${result.errors.length} problems.`);
    } catch (err) {
      if (mine !== checking || controller.signal.aborted) return;
      clear(verdictSlot, errorBox(err));
    }
    showAuto();
    updateStart();
  }

  const trainingPicker = filePicker({
    prefix: "training",
    label: "Training file",
    onChange: (file) => {
      training = file;
      check = null;
      clear(verdictSlot);
      updateStart();
      runCheck();
    },
  });
  const validationPicker = filePicker({ prefix: "validation", label: "Validation file", optional: true, onChange: () => {} });

  modelSelect.addEventListener("change", runCheck);
  methodSelect.addEventListener("change", () => {
    renderHyperparameters();
    runCheck();
  });

  const form = h(
    "form", { class: "new-job", "aria-labelledby": "new-job-data" },
    h("fieldset", {}, h("legend", { id: "new-job-data" }, "Training data"), trainingPicker.element, verdictSlot),
    h(
      "fieldset", {}, h("legend", {}, "Model and method"),
      h("label", { for: "base-model" }, "Base model"), modelSelect,
      h("p", { class: "field-help", id: "base-model-help" }, "A base model of this server, or one of your fine-tuned models to train further."),
      h("label", { for: "method" }, "Method"), methodSelect, methodHelp,
    ),
    h(
      "fieldset", {}, h("legend", {}, "Hyperparameters"),
      h("p", { class: "hint" }, "\"auto\" is resolved when validation has counted the training examples; the rule is given beside each field."),
      hpSlot,
    ),
    h("fieldset", {}, h("legend", {}, "Validation data (optional)"), validationPicker.element),
    h(
      "fieldset", {}, h("legend", {}, "Name and seed"),
      h("label", { for: "suffix" }, "Suffix (optional)"), suffix,
      h("p", { class: "field-help", id: "suffix-help" }, "Up to 64 letters, digits, '.', '_' or '-'; it goes into the fine-tuned model's name."),
      h("label", { for: "seed" }, "Seed (optional)"), seed,
      h("p", { class: "field-help", id: "seed-help" }, "Left empty, the server picks one and shows it on the job."),
    ),
    errorSlot,
    h("div", { class: "actions" }, start),
    startHint,
  );

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(errorSlot);
    const m = method();
    const hyperparameters = {};
    for (const f of fields) {
      const value = f.value();
      if (!f.isDefault() && value !== undefined) hyperparameters[f.name] = value;
    }
    const body = {
      model: modelSelect.value,
      training_file: training.id,
      method: { type: m.name, [m.name]: { hyperparameters } },
    };
    if (validationPicker.chosen()) body.validation_file = validationPicker.chosen();
    if (suffix.value.trim()) body.suffix = suffix.value.trim();
    if (seed.value.trim()) body.seed = Number(seed.value);
    start.disabled = true;
    try {
      const job = await api("/fine_tuning/jobs", { method: "POST", body });
      announce(`Job ${job.id} created.`);
      window.location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (err) {
      clear(errorSlot, errorBox(err));
      announce(`The job was not created: ${err.message}`);
      updateStart();
    }
  });

  root.append(form);
  renderHyperparameters();
  try {
    await Promise.all([trainingPicker.load(), validationPicker.load()]);
  } catch (err) {
    errorSlot.append(errorBox(err));
  }
  return () => controller.abort();
}
