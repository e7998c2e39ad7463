"""The dashboard's own static files (service/ui/static, not the vendored library) load nothing
from another origin and need nothing the Content-Security-Policy forbids: a cheap guard
against a CDN link or inline code slipping in, which the browser would block in production.

- HTML: every script has a same-origin ``src`` and no inline content; every stylesheet link is
  same-origin; no ``<style>`` element, no ``style=`` or ``on...=`` attribute, no http(s) URL;
- JavaScript: no http(s) URL, no ``style`` attribute set through ``h()`` or ``setAttribute``,
  no HTML parsing of strings (innerHTML, outerHTML, insertAdjacentHTML, document.write) and no
  eval or ``new Function``;
- CSS: no http(s) URL, no ``@import``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from service.ui import STATIC_DIR
from tests.harness.k8s import dockerfile

OWN = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file() and "vendor" not in p.relative_to(STATIC_DIR).parts)
URL = re.compile(r"https?://", re.IGNORECASE)
JS_FORBIDDEN = (
    (re.compile(r"\.(innerHTML|outerHTML)\b|\binsertAdjacentHTML\b|\bdocument\.write"), "parses a string as HTML"),
    (re.compile(r"(?<![\w.$])eval\s*\(|\bnew\s+Function\b"), "evaluates a string as code"),
    # a style attribute's CSS (declarations: "prop: value"), not Intl's { style: "percent" }
    (
        re.compile(r"""(?<![\w.$])["']?style["']?\s*:\s*["'`][^"'`]*:|setAttribute\(\s*["']style["']"""),
        "sets a style attribute",
    ),
)


def _same_origin(url: str | None) -> bool:
    return bool(url) and not re.match(r"^([a-z][a-z0-9+.-]*:|//)", url or "", re.IGNORECASE)


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"<{tag}> has a {name}= attribute")
            if value and URL.search(value):
                self.problems.append(f"<{tag} {name}={value!r}> points at another origin")
        if tag == "style":
            self.problems.append("a <style> element")
        if tag == "script":
            self._in_script = True
            if not _same_origin(a.get("src")):
                self.problems.append(f"<script src={a.get('src')!r}>: not a same-origin file")
        if tag == "link" and "stylesheet" in (a.get("rel") or "") and not _same_origin(a.get("href")):
            self.problems.append(f"<link rel=stylesheet href={a.get('href')!r}>: not a same-origin file")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:40]!r}")


def _strip_js_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"(^|\s)//.*$", r"\1", text, flags=re.MULTILINE)


def problems(path: Path) -> list[str]:
    text = path.read_text()
    if path.suffix == ".html":
        parser = _Html()
        parser.feed(text)
        return parser.problems
    found = [f"an http(s) URL at line {text[: m.start()].count(chr(10)) + 1}" for m in URL.finditer(text)]
    if path.suffix == ".js":
        code = _strip_js_comments(text)
        found += [f"{why}: {m.group().strip()!r}" for pattern, why in JS_FORBIDDEN for m in pattern.finditer(code)]
    if path.suffix == ".css" and "@import" in text:
        found.append("@import")
    return found


def test_the_static_files_are_the_dashboards() -> None:
    names = {p.relative_to(STATIC_DIR).as_posix() for p in OWN}
    assert {"index.html", "js/app.js", "js/dom.js", "js/api.js", "css/ui.css"} <= names


@pytest.mark.parametrize("path", OWN, ids=lambda p: p.relative_to(STATIC_DIR).as_posix())
def test_a_static_file_loads_nothing_from_another_origin_and_nothing_inline(path: Path) -> None:
    assert problems(path) == [], f"{path.relative_to(STATIC_DIR)}: the CSP would block or the VPC cannot reach"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.html", '<script src="https://cdn.example/x.js"></script>', "not a same-origin file"),
        ("a.html", "<script>alert(1)</script>", "inline script"),
        ("a.html", '<div style="color: red">x</div>', "style= attribute"),
        ("a.html", '<button onclick="go()">x</button>', "onclick= attribute"),
        ("a.html", '<link rel="stylesheet" href="//cdn.example/x.css">', "not a same-origin file"),
        ("a.js", 'el.innerHTML = "<b>" + name;', "parses a string as HTML"),
        ("a.js", 'h("div", { style: "color: red" });', "sets a style attribute"),
        ("a.js", 'fetch("https://cdn.example/x");', "http(s) URL"),
        ("a.js", "eval(code);", "evaluates a string as code"),
        ("a.css", '@import "x.css";', "@import"),
    ],
)
def test_the_guard_finds_each_fault(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert any(expected in p for p in problems(path)), problems(path)


def test_the_guard_passes_allowed_code(tmp_path: Path) -> None:
    path = tmp_path / "ok.js"
    path.write_text(
        '// no innerHTML here\nel.style.width = "3px"; h("a", { href: "#/jobs" }, "Jobs");\n'
        'new Intl.NumberFormat(undefined, { style: "percent" });\n'
    )
    assert problems(path) == []


def test_the_api_image_vendors_the_dashboards_library_before_installing() -> None:
    """The api image serves /ui/ from the installed package, so scripts/vendor_ui.py runs before
    ``pip install`` (which packages service/ui/static/**), from an npm registry the build names."""
    (api,) = [s for s in re.split(r"^FROM ", dockerfile(), flags=re.MULTILINE) if re.match(r"\S+ AS api\s", s)]
    assert re.search(r"^ARG NPM_CONFIG_REGISTRY=", api, flags=re.MULTILINE)
    assert re.search(r"^COPY scripts/vendor_ui.py ", api, flags=re.MULTILINE)
    run = api.index("python scripts/vendor_ui.py")
    assert run < api.index('pip install ".[service]"'), "vendor first: the install copies service/ui/static"
    assert "vendor/uplot/uPlot.iife.min.js" in api, "the build checks the installed package has the library"
