"""The docs cannot drift from the code:

- the per-method tables in docs/hyperparameters.md are exactly what the method registry renders
  (``contract.methods.hyperparameter_table``); regenerate them with
  ``.venv/bin/python -m tests.unit.test_docs --write``, which also adds the section of a newly
  registered method;
- the docs point at nothing outside this repository;
- every ``HONE_...`` environment variable they name is a real setting of ``service.config.Settings``
  (``HONE_`` + field names, nested levels joined by ``__``) or one of the few variables the code
  reads directly (``NON_SETTINGS``, each with the file that reads it).
"""

from __future__ import annotations

import re
import sys
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from contract.methods import METHODS, MethodSpec, hyperparameter_table
from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
HYPERPARAMETERS_DOC = ROOT / "docs" / "hyperparameters.md"
DOCS = sorted(p for p in (ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]  # text, not the screenshots
# what the docs must never point at: the workspace outside this repository (spelt in parts so
# this checker is not itself a pointer)
FORBIDDEN = ("../" + "shared", "shared" + "/", "DESIGN" + ".md")

# HONE_* variables that are not Settings fields: read straight from the environment by the file
# named (the inference plugin runs inside vLLM, which has no hone Settings; the rest are tests,
# the demo and boto3's endpoint).
NON_SETTINGS: dict[str, str] = {
    "HONE_S3_ENDPOINT_URL": "contract/blobstore/s3.py",  # boto3 endpoint_url (MinIO, Ceph RGW)
    "HONE_STORAGE_URL": "inference/plugin.py",  # also a Setting; the plugin registers only when set
    "HONE_BASE_MODEL": "inference/resolver.py",
    "HONE_ADAPTER_CACHE_DIR": "inference/resolver.py",
    "HONE_ADAPTER_CACHE_BYTES": "inference/resolver.py",
    "HONE_VLLM_PORT": "inference/resolver.py",
    "HONE_ATTEMPT_DIR": "tests/fakes/trainer_process.py",  # set per attempt by service/launcher/local.py
    "HONE_FAKE_TRAINER_SLEEP_S": "tests/fakes/trainer_process.py",
    "HONE_FAKE_TRAINER_EXIT": "tests/fakes/trainer_process.py",
    "HONE_TEST_POSTGRES": "tests/harness/server.py",  # also scripts/test.sh
    "HONE_K8S_API_URL": "tests/k8s/test_cluster.py",
    "HONE_K8S_API_KEY": "tests/k8s/test_cluster.py",
    "HONE_K8S_TEST_NAMESPACE": "tests/contract/test_launcher_conformance.py",
    "HONE_DEMO_BASE_URL": "examples/demo.py",
    "HONE_DEMO_API_KEY": "examples/demo.py",
    "HONE_DEMO_PORT": "scripts/demo.sh",
    "HONE_CHROMIUM": "tests/harness/browser.py",  # the browser tests' Chromium
    "HONE_UI_SCREENSHOTS": "tests/harness/browser.py",  # also scripts/screenshots.sh
}
_ENV_NAME = re.compile(r"(?<![A-Za-z0-9_])HONE_[A-Z0-9_]*")


# --- hyperparameter tables ---------------------------------------------------------------


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- table:{name} -->", f"<!-- /table:{name} -->"


def _block(name: str) -> re.Pattern[str]:
    start, end = _markers(name)
    return re.compile(re.escape(start) + r"\n(.*?)" + re.escape(end), re.DOTALL)


def _section(method: MethodSpec) -> str:
    start, end = _markers(method.name)
    return (
        f"## {method.name}\n\nData format `{method.data_format.value}`; recipe `{method.recipe}`.\n\n"
        f"{start}\n{hyperparameter_table(method)}\n{end}\n"
    )


def render(text: str) -> str:
    """``text`` with every registered method's table regenerated, and a section appended for
    each method that has none yet."""
    for method in METHODS:
        start, end = _markers(method.name)
        table = hyperparameter_table(method)
        if _block(method.name).search(text):
            text = _block(method.name).sub(lambda _m, t=table, s=start, e=end: f"{s}\n{t}\n{e}", text)
        else:
            text = text.rstrip("\n") + "\n\n" + _section(method)
    return text


@pytest.mark.parametrize("method", list(METHODS), ids=lambda m: m.name)
def test_hyperparameter_table_matches_the_registry(method: MethodSpec) -> None:
    text = HYPERPARAMETERS_DOC.read_text()
    found = _block(method.name).findall(text)
    assert len(found) == 1, (
        f"docs/hyperparameters.md needs one '## {method.name}' section with "
        f"{_markers(method.name)}; run .venv/bin/python -m tests.unit.test_docs --write"
    )
    assert found[0].strip("\n") == hyperparameter_table(method), (
        f"the {method.name} table is stale; run .venv/bin/python -m tests.unit.test_docs --write"
    )
    assert f"\n## {method.name}\n" in text


def test_no_table_for_an_unregistered_method() -> None:
    named = set(re.findall(r"<!-- table:([^ ]+) -->", HYPERPARAMETERS_DOC.read_text()))
    assert named <= set(METHODS.names), f"tables for methods that are not registered: {named - set(METHODS.names)}"


# --- nothing outside the repository ---------------------------------------------------------


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_point_at_nothing_outside_the_repository(path: Path) -> None:
    text = path.read_text()
    found = [(n, word) for n, line in enumerate(text.splitlines(), 1) for word in FORBIDDEN if word in line]
    assert found == [], f"{path.relative_to(ROOT)} refers outside the repository at (line, text): {found}"


# --- environment variables ----------------------------------------------------------------


def _nested_model(annotation: object) -> type[BaseModel] | None:
    """The pydantic model a field holds (``Model`` or ``Model | None``), else None."""
    candidates = [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        candidates = [a for a in typing.get_args(annotation) if a is not type(None)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def settings_variables(model: type[BaseModel] = Settings, prefix: str = "HONE_") -> set[str]:
    """Every environment variable that sets a leaf of ``model`` (upper case; pydantic-settings
    matches them case-insensitively, nested levels joined by ``__``)."""
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        name = prefix + field_name.upper()
        nested = _nested_model(field.annotation)
        if nested is None:
            names.add(name)
        else:
            names |= settings_variables(nested, name + "__")
    return names


def mentioned_variables(text: str) -> list[tuple[str, bool]]:
    """(name, is_prefix) for each ``HONE_...`` in ``text``; a name ending in ``_`` or followed by
    ``*`` (``HONE_LAUNCHER__KUBERNETES__*``) stands for every variable it starts."""
    return [
        (m.group(), m.group().endswith("_") or text[m.end() : m.end() + 1] == "*") for m in _ENV_NAME.finditer(text)
    ]


def test_settings_variables_walk_the_nested_launcher_config() -> None:
    names = settings_variables()
    assert {
        "HONE_DATA_DIR",
        "HONE_LAUNCHER__BACKEND",
        "HONE_LAUNCHER__LOCAL__NPROC_PER_NODE",
        "HONE_LAUNCHER__KUBERNETES__NAMESPACE",
    } <= names
    assert "HONE_LAUNCHER" not in names  # a section, not a value: HONE_LAUNCHER=kubernetes is not a setting


@pytest.mark.parametrize("name", sorted(NON_SETTINGS))
def test_non_settings_variables_are_read_where_listed(name: str) -> None:
    assert name in (ROOT / NON_SETTINGS[name]).read_text(), f"{name} is no longer in {NON_SETTINGS[name]}"


CONFIGS = sorted((ROOT / "k8s").rglob("*.yaml")) + [ROOT / "Dockerfile"]


@pytest.mark.parametrize(
    "path", [p for p in DOCS if p.suffix == ".md"] + CONFIGS, ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_environment_variable_in_the_docs_is_real(path: Path) -> None:
    """Also in the manifests and the Dockerfile: Settings ignores unknown variables, so a
    misspelt or renamed one in a deployment would be dropped without a word."""
    known = settings_variables() | set(NON_SETTINGS)
    unknown = sorted(
        {
            name
            for name, is_prefix in mentioned_variables(path.read_text())
            if not (any(k.startswith(name) for k in known) if is_prefix else name in known)
        }
    )
    assert unknown == [], (
        f"{path.relative_to(ROOT)} names variables that are neither service.config.Settings "
        f"fields nor read by the code: {unknown}"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.unit.test_docs --write   (regenerates docs/hyperparameters.md's tables)")
    HYPERPARAMETERS_DOC.write_text(render(HYPERPARAMETERS_DOC.read_text()))
    print(f"wrote {HYPERPARAMETERS_DOC.relative_to(ROOT)}")
