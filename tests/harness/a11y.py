"""Accessibility checks of a rendered page, run inside the page (Playwright ``page.evaluate``):

- the document has a language (``<html lang>``) and exactly one visible ``<h1>``;
- every visible form control (input, select, textarea) has an accessible name: ``<label for>``,
  an enclosing ``<label>``, ``aria-label`` or ``aria-labelledby`` naming text;
- every button and link has a name (its text, ``aria-label``, ``aria-labelledby``, ``title`` or
  an image's ``alt``); every image has an ``alt`` attribute (empty for decoration);
- every column header (``thead th``) has ``scope="col"``; no two elements share an id;
- text contrast (WCAG 2 AA): each visible element with text of its own, its colour against its
  effective background (the first non-transparent background up its ancestors, blended over
  those below it), at least 4.5:1, or 3:1 for large text (24px, or 18.66px bold). Disabled
  controls are exempt, as WCAG exempts inactive components.

Each violation names the element by a selector-like path and its text, so a failure says where.
"""

from __future__ import annotations

from typing import Any

_SCRIPT = r"""
() => {
  const out = [];
  const describe = (el) => {
    const parts = [];
    for (let e = el; e && e.nodeType === 1 && parts.length < 4; e = e.parentElement) {
      let s = e.tagName.toLowerCase();
      if (e.id) { s += "#" + e.id; parts.unshift(s); break; }
      const cls = [...e.classList].slice(0, 2);
      if (cls.length) s += "." + cls.join(".");
      parts.unshift(s);
    }
    const text = (el.innerText || el.value || el.getAttribute("aria-label") || "").trim().replace(/\s+/g, " ");
    return parts.join(" > ") + (text ? ` "${text.slice(0, 40)}"` : "");
  };
  const visible = (el) => {
    if (el.closest("[hidden], [aria-hidden='true']")) return false;
    const style = getComputedStyle(el);
    if (style.visibility !== "visible" || style.display === "none") return false;
    const r = el.getBoundingClientRect();
    return r.width > 1 && r.height > 1 && r.right > 0 && r.bottom > 0;
  };
  const textOf = (ids) => ids.split(/\s+/).map((id) => document.getElementById(id))
    .filter(Boolean).map((e) => e.textContent.trim()).join(" ").trim();
  const ariaName = (el) => (el.getAttribute("aria-label") || "").trim()
    || (el.hasAttribute("aria-labelledby") ? textOf(el.getAttribute("aria-labelledby")) : "");

  if (!(document.documentElement.getAttribute("lang") || "").trim()) out.push("html: no lang attribute");
  const h1s = [...document.querySelectorAll("h1")].filter(visible);
  if (h1s.length !== 1) out.push(`page: ${h1s.length} visible <h1> elements, want exactly 1`);

  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || !visible(el)) continue;
    const byFor = el.id ? [...document.querySelectorAll("label")].filter((l) => l.htmlFor === el.id) : [];
    const wrapping = el.closest("label");
    const named = ariaName(el) || byFor.some((l) => l.textContent.trim()) || (wrapping && wrapping.textContent.trim());
    if (!named) out.push(`${describe(el)}: form control without a label (label for, aria-label or aria-labelledby)`);
  }
  const actions = "button, a[href], [role=button], [role=link], input[type=submit], input[type=button]";
  for (const el of document.querySelectorAll(actions)) {
    if (!visible(el)) continue;
    const imgAlt = [...el.querySelectorAll("img[alt]")].map((i) => i.alt.trim()).join("");
    const name = ariaName(el) || (el.innerText || "").trim() || (el.value || "").trim()
      || (el.getAttribute("title") || "").trim() || imgAlt;
    if (!name) out.push(`${describe(el)}: ${el.tagName.toLowerCase()} without an accessible name`);
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) out.push(`${describe(img)}: image without alt`);
  }
  for (const th of document.querySelectorAll("thead th")) {
    const scope = th.getAttribute("scope");
    if (scope !== "col" && scope !== "colgroup") out.push(`${describe(th)}: column header without scope=col`);
  }
  const ids = new Map();
  for (const el of document.querySelectorAll("[id]")) ids.set(el.id, (ids.get(el.id) || 0) + 1);
  for (const [id, n] of ids) if (n > 1) out.push(`#${id}: ${n} elements share this id (labels and references break)`);

  // Contrast.
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const background = (el) => {
    const layers = [];
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      opacity *= Number(s.opacity);
      const bg = parse(s.backgroundColor);
      if (bg && bg.a > 0) {
        layers.push(bg);
        if (bg.a >= 1) break;
      }
    }
    let colour = { r: 255, g: 255, b: 255, a: 1 };  // the canvas
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return [colour, opacity];
  };
  const luminance = (c) => {
    const ch = [c.r, c.g, c.b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
  };
  const ratio = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  for (const el of document.body.querySelectorAll("*")) {
    if (["SCRIPT", "STYLE", "NOSCRIPT", "CANVAS", "OPTION"].includes(el.tagName) || el.closest("svg")) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const field = ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName) && el.type !== "hidden" && el.value;
    if (!(own || field) || !visible(el) || el.closest(":disabled")) continue;
    const s = getComputedStyle(el);
    const [bg, opacity] = background(el);
    const fg = parse(s.color);
    if (!fg) continue;
    const text = over({ ...fg, a: fg.a * opacity }, bg);
    const size = parseFloat(s.fontSize);
    const large = size >= 24 || (Number(s.fontWeight) >= 700 && size >= 18.66);
    const need = large ? 3 : 4.5;
    const got = ratio(text, bg);
    if (got < need) {
      const rgb = (c) => `rgb(${Math.round(c.r)}, ${Math.round(c.g)}, ${Math.round(c.b)})`;
      out.push(`${describe(el)}: contrast ${got.toFixed(2)}:1 < ${need}:1 (${rgb(text)} on ${rgb(bg)}, ${size}px)`);
    }
  }
  return out;
}
"""


def violations(page: Any) -> list[str]:
    """The accessibility problems of the page as it is now, one line each."""
    return list(page.evaluate(_SCRIPT))


def assert_accessible(page: Any) -> None:
    found = violations(page)
    assert not found, f"{page.url}: {len(found)} accessibility violation(s):\n" + "\n".join(found)
