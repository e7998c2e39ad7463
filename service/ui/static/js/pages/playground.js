// The playground: one prompt to a base model and to a fine-tuned (or checkpoint) model side by
// side, both streamed at once through POST /v1/chat/completions, with the sampling parameters.
// #/playground?model=<id> puts <id> on the right; a checkpoint name (ft:...:ckpt-step-N) that
// GET /v1/models does not list is accepted as it is (the model fields are editable).

import { api, streamEvents } from "../api.js";
import { announce, clear, errorBox, h } from "../dom.js";

const SIDES = [
  { id: "left", title: "Base", label: "Base model", answer: "Base answer" },
  { id: "right", title: "Fine-tuned", label: "Fine-tuned or checkpoint model", answer: "Fine-tuned answer" },
];
// [id, label, input attributes, help]
const PARAMS = [
  ["temperature", "Temperature", { min: 0, max: 2, step: "any", value: "0" }, "0 = greedy (the same answer each time)."],
  ["top_p", "Top p", { min: 0, max: 1, step: "any", placeholder: "1" }, "Nucleus sampling; empty = the server's default."],
  ["max_tokens", "Max tokens", { min: 1, step: 1, value: "64" }, "The longest answer, in tokens."],
  ["seed", "Seed", { step: 1, placeholder: "none" }, "Fixes the sampling; empty = none."],
];

const isFineTuned = (id) => id.startsWith("ft:");
// "ft:hone-tiny:acme:a:ftjob-1:ckpt-step-4" -> "hone-tiny"
const baseOf = (id) => (isFineTuned(id) ? id.split(":")[1] : id);

function field(id, label, input, help) {
  return h("div", {}, h("label", { for: id }, label), input, help ? h("p", { class: "field-help", id: `${id}-help` }, help) : null);
}

function numberInput(id, attrs, help) {
  return h("input", { id, type: "number", inputmode: "decimal", "aria-describedby": help ? `${id}-help` : null, ...attrs });
}

/** The side's output box, meta line and error slot, and a function that streams one answer. */
function makeSide({ id, title, label, answer }, input) {
  const output = h("pre", { class: "output", id: `pg-${id}-output`, "aria-live": "polite", "aria-label": answer, dataset: { chunks: "0", state: "idle" } });
  const meta = h("p", { class: "muted pg-meta", id: `pg-${id}-meta` });
  const errors = h("div", {});
  const column = h("section", { class: "pg-side", "aria-labelledby": `pg-${id}-title` },
    h("h2", { id: `pg-${id}-title` }, title), field(`pg-${id}-model`, label, input), output, meta, errors);

  async function stream(body, signal) {
    const model = input.value.trim();
    clear(output);
    clear(errors);
    meta.textContent = "";
    output.dataset.chunks = "0";
    output.dataset.state = "streaming";
    output.setAttribute("aria-busy", "true");
    let finish = null;
    let usage = null;
    try {
      if (!model) throw new Error("Choose a model for this side.");
      await streamEvents("/chat/completions", { ...body, model }, (event) => {
        for (const choice of event.choices || []) {
          const text = choice.delta?.content;
          if (text) {
            output.append(text);
            output.dataset.chunks = String(Number(output.dataset.chunks) + 1);
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
        if (event.usage) usage = event.usage;
      }, { signal });
      output.dataset.state = "done";
      const parts = [`finish_reason: ${finish ?? "—"}`];
      if (usage) parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
      meta.textContent = parts.join(" · ");
    } catch (err) {
      if (err.name === "AbortError") {
        output.dataset.state = "stopped";
        meta.textContent = "Stopped.";
      } else {
        output.dataset.state = "error";
        errors.append(errorBox(err));
      }
    } finally {
      output.removeAttribute("aria-busy");
    }
    return output.dataset.state;
  }
  return { column, stream };
}

function pickDefaults(ids, wanted) {
  const right = wanted || ids.find(isFineTuned) || "";
  const base = baseOf(right);
  const left = ids.includes(base) ? base : ids.find((m) => !isFineTuned(m)) || base;
  return [left, right];
}

export async function render(root, _params, query) {
  const listId = "pg-models";
  const datalist = h("datalist", { id: listId });
  const inputs = SIDES.map((s) => h("input", { id: `pg-${s.id}-model`, type: "text", list: listId, autocomplete: "off", spellcheck: "false", class: "mono pg-model" }));
  const sides = SIDES.map((s, i) => makeSide(s, inputs[i]));
  const system = h("textarea", { id: "pg-system", rows: 2, placeholder: "You are a helpful assistant." });
  const prompt = h("textarea", { id: "pg-prompt", rows: 4, required: true });
  const params = Object.fromEntries(PARAMS.map(([id, , attrs, help]) => [id, numberInput(`pg-${id}`, attrs, help)]));
  const run = h("button", { type: "submit" }, "Run");
  const stop = h("button", { type: "button", class: "danger", disabled: true }, "Stop");
  const formErrors = h("div", {});
  const modelErrors = h("div", {});
  let controller = null;

  stop.addEventListener("click", () => controller?.abort());

  const form = h("form", { class: "pg-form", novalidate: true },
    field("pg-system", "System message (optional)", system),
    field("pg-prompt", "User prompt", prompt),
    h("fieldset", {}, h("legend", {}, "Sampling parameters"),
      h("div", { class: "grid" }, PARAMS.map(([id, label, , help]) => field(`pg-${id}`, label, params[id], help)))),
    formErrors,
    h("div", { class: "actions" }, run, stop));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(formErrors);
    const body = requestBody(system.value, prompt.value, params);
    if (body instanceof Error) {
      formErrors.append(errorBox(body));
      return;
    }
    const right = inputs[1].value.trim();
    history.replaceState(null, "", `#/playground${right ? `?model=${encodeURIComponent(right)}` : ""}`);
    controller = new AbortController();
    run.disabled = true;
    stop.disabled = false;
    announce("Running both models.");
    const states = await Promise.all(sides.map((side) => side.stream(body, controller.signal)));
    controller = null;
    run.disabled = false;
    stop.disabled = true;
    announce(states.every((s) => s === "done") ? "Both answers finished." : `Answers: ${states.join(", ")}.`);
  });

  root.append(
    h("h1", {}, "Playground"),
    h("p", { class: "hint" }, "The same prompt to a base model and to a fine-tuned or checkpoint model, streamed side by side."),
    datalist, modelErrors, form,
    h("div", { class: "cols pg-cols" }, sides.map((s) => s.column)),
  );

  let ids = [];
  try {
    ids = (await api("/models")).data.map((m) => m.id).sort();
  } catch (err) {
    modelErrors.append(errorBox(err));
  }
  const wanted = query.get("model") || "";
  fillOptions(datalist, [...new Set([...ids, wanted].filter(Boolean))]);
  const [left, right] = pickDefaults(ids, wanted);
  inputs[0].value = query.get("base") || left;
  inputs[1].value = right;
  return () => controller?.abort();
}

function fillOptions(datalist, ids) {
  clear(datalist, ids.map((id) => h("option", { value: id })));
}

/** The chat request (without model), or an Error naming the field that is wrong. */
function requestBody(systemText, promptText, params) {
  if (!promptText.trim()) return Object.assign(new Error("Write a user prompt."), { param: "prompt" });
  const messages = [];
  if (systemText.trim()) messages.push({ role: "system", content: systemText });
  messages.push({ role: "user", content: promptText });
  const body = { messages, stream_options: { include_usage: true } };
  for (const [id, input] of Object.entries(params)) {
    const raw = input.value.trim();
    if (raw === "") continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || !input.checkValidity()) {
      return Object.assign(new Error(`${id} must be a number${input.min ? ` ≥ ${input.min}` : ""}${input.max ? ` and ≤ ${input.max}` : ""}.`), { param: id });
    }
    body[id] = value;
  }
  return body;
}
