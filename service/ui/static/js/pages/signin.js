// Sign in with a project API key: checked against GET /v1/models, then kept in sessionStorage.

import { api, session } from "../api.js";
import { clear, errorBox, h } from "../dom.js";

export function render(root) {
  const input = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "api-key-help",
  });
  const status = h("div", { "aria-live": "polite" });
  const form = h(
    "form", { class: "signin panel", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to hone"),
    h("label", { for: "api-key" }, "Project API key"),
    input,
    h("p", { class: "field-help", id: "api-key-help" },
      "An sk-hone-… key of your project (hone keys create --project NAME). It stays in this browser tab's session storage and is sent only to this server."),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")),
    status,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    clear(status);
    try {
      await api("/models", { key });
    } catch (err) {
      clear(status, errorBox(err.status === 401 ? new Error("This API key is not valid for this server.") : err));
      input.focus();
      return;
    }
    session.signIn(key);
    window.dispatchEvent(new CustomEvent("hone:signed-in"));
  });
  clear(root, form);
  input.focus();
}
