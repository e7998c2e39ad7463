"""The resources hone had before issue 12, through the official Node SDK (``tests/node/core.mjs``):
files, jobs, events, checkpoints, cancel, models and the error classes it maps statuses to."""

from __future__ import annotations

from pathlib import Path

from tests.harness.node import run_node
from tests.harness.server import RunningServer


def test_files_jobs_models_and_errors_through_the_node_sdk(server: RunningServer, tmp_path: Path) -> None:
    results = run_node("core.mjs", tmp_path, base_url=server.v1, api_key=server.new_key("node-core"))
    assert results["file"].startswith("file-") and results["job"].startswith("ftjob-")
    assert results["listed"] >= 1
