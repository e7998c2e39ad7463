// PLACEHOLDER: replaced by the page's real module.
import { h } from "../dom.js";

export function render(root) {
  root.append(h("h1", {}, "models"));
}
