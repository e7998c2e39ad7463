"""The dependency rules of docs/architecture.md, enforced:

- ``service``, ``trainer`` and ``inference`` never import each other, ``contract`` imports none
  of them, and the control plane never imports torch or the training/serving stacks
  (import-linter, contracts in pyproject.toml);
- ``contract`` imports only the standard library and pydantic, plus boto3/botocore inside a
  function (the S3 store, loaded only when used);
- the wire types (``service/protocol``) import only pydantic, the standard library and the
  contract.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
LEAF_ALLOWED = {"pydantic", "pydantic_core", "contract"}
LEAF_LAZY_ONLY = {"boto3", "botocore"}
WIRE_ALLOWED = {"pydantic", "pydantic_core", "contract"}


def import_violations(
    source: str, allowed: set[str], lazy_only: frozenset[str] | set[str] = frozenset(), own: str = ""
) -> list[str]:
    """Top-level packages a module imports beyond the standard library and ``allowed``; those in
    ``lazy_only`` are allowed inside a function body only."""
    tree = ast.parse(source)
    lazy_nodes = {
        id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(f)
    }
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in allowed or top == "__future__":
                continue
            if top in lazy_only and id(node) in lazy_nodes:
                continue
            if own and name.startswith(own):
                continue
            bad.append(name)
    return bad


def test_import_linter_contracts_hold() -> None:
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


@pytest.mark.parametrize("path", sorted((ROOT / "contract").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_contract_imports_only_stdlib_and_pydantic(path: Path) -> None:
    assert import_violations(path.read_text(), LEAF_ALLOWED, LEAF_LAZY_ONLY) == []


@pytest.mark.parametrize("path", sorted((ROOT / "service" / "protocol").glob("*.py")), ids=lambda p: p.name)
def test_wire_types_import_only_pydantic_and_the_contract(path: Path) -> None:
    assert import_violations(path.read_text(), WIRE_ALLOWED, own="service.protocol") == []


def test_the_checker_catches_what_it_must() -> None:
    """The allowlist check itself: a top-level boto3, a FastAPI import and a sibling process are
    violations; a stdlib import and boto3 inside a function are not."""
    source = (
        "import json\nimport boto3\nfrom fastapi import APIRouter\nfrom service.app import x\n"
        "def f():\n    import boto3\n"
    )
    assert import_violations(source, LEAF_ALLOWED, LEAF_LAZY_ONLY) == ["boto3", "fastapi", "service.app"]
