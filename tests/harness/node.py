"""Runs a Node SDK contract script (``tests/node/*.mjs``, the official ``openai`` npm package)
against a running hone and validates every JSON response it received against the OpenAI spec.

The script gets the base URL and keys in its environment, asserts with ``node:assert``, and
calls ``finish(results)`` from ``tests/node/lib.mjs``; a failed assertion fails the test with
the script's output. ``scripts/setup.sh`` installs the package (``npm ci`` in tests/node).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.contract.openapi import SpecChecker

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


def node_ready() -> str | None:
    """Why Node SDK tests cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        return "the openai npm package is not installed (scripts/setup.sh runs npm ci in tests/node)"
    return None


def run_node(
    script: str,
    tmp_path: Path,
    *,
    base_url: str,
    api_key: str | None = None,
    admin_key: str | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 120,
) -> dict[str, Any]:
    """Run ``tests/node/{script}``; return what it passed to ``finish``. Every recorded JSON
    response has been validated against the spec (at least one must have been)."""
    reason = node_ready()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"Node SDK tests must run in CI: {reason}")
        pytest.skip(reason)
    out = tmp_path / f"{Path(script).stem}.node.json"
    full_env = {
        **os.environ,
        "HONE_BASE_URL": base_url,
        "HONE_NODE_OUT": str(out),
        **({"HONE_API_KEY": api_key} if api_key else {}),
        **({"HONE_ADMIN_KEY": admin_key} if admin_key else {}),
        **(env or {}),
    }
    proc = subprocess.run(
        ["node", str(NODE_DIR / script)],
        cwd=NODE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert proc.returncode == 0, f"node {script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(out.read_text())
    checker = SpecChecker()
    for r in report["responses"]:
        checker.check(r["method"], r["path"], r["status"], r["content_type"], r["body"].encode())
    assert checker.checked > 0, f"node {script} received no JSON response the spec describes"
    return dict(report["results"])
