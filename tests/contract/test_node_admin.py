"""The Admin API through the official Node SDK (``tests/node/admin.mjs``): projects, service
accounts, project API keys, admin API keys and usage, every response checked against the spec."""

from __future__ import annotations

from pathlib import Path

from tests.harness.node import run_node
from tests.harness.server import RunningServer


def test_admin_api_through_the_node_sdk(server: RunningServer, tmp_path: Path) -> None:
    results = run_node(
        "admin.mjs",
        tmp_path,
        base_url=server.v1,
        api_key=server.new_key("node-admin"),
        admin_key=server.new_admin_key("node admin"),
    )
    assert results["project"].startswith("proj_") and results["account"].startswith("svc_acct_")
    assert results["projects"] >= 2  # the project made here and node-admin's
