"""The Evals API and the graders through the official Node SDK (``tests/node/evals.mjs``): an
eval of pre-generated samples run to completion by hone's runner, its output items, cancel and
delete, graders run and validate, and 404 across projects; every response checked against the
spec."""

from __future__ import annotations

from pathlib import Path

from tests.harness.node import run_node
from tests.harness.server import RunningServer


def test_evals_through_the_node_sdk(server: RunningServer, tmp_path: Path) -> None:
    results = run_node(
        "evals.mjs",
        tmp_path,
        base_url=server.v1,
        api_key=server.new_key("node-evals"),
        env={"HONE_OTHER_KEY": server.new_key("node-evals-other")},
    )
    assert results["eval"].startswith("eval_") and results["run"].startswith("evalrun_")
    assert results["passed"] == 3
