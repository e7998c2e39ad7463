"""``hone up``'s supervision of its vLLM servers, on a stand-in process tree: a leader that
answers /health and forks a long-lived child, as vLLM's API server forks its engine and
workers. SIGKILL the leader: the supervisor stops what is left of the group (no orphan keeps
its memory), starts the server again after a backoff, reports the restart, and is ready again;
stop() ends the whole group even when its leader is already gone."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from inference.launch import Supervisor, VllmConfig, VllmServer
from tests.harness.ports import free_port
from tests.harness.waiting import wait_until

# The stand-in: spawn a child that sleeps (the "engine"), record its pid, then serve /health.
LEADER = """
import http.server, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
open(sys.argv[2], "a").write(f"{child.pid}\\n")
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_server_is_restarted_and_leaves_no_orphans(tmp_path: Path) -> None:
    port, children = free_port(), tmp_path / "children"
    cfg = VllmConfig(name="stand-in", source="-", storage_url="file:///x", cache_dir=tmp_path, port=port)
    server = VllmServer(cfg, tmp_path / "server.log", argv=[sys.executable, "-c", LEADER, str(port), str(children)])
    restarts: list[tuple[str, int]] = []
    supervisor = Supervisor(server, on_restart=lambda name, n: restarts.append((name, n)), health_timeout_s=30)
    supervisor.start()
    try:
        assert supervisor.ready
        first_leader = server.proc.pid  # type: ignore[union-attr]
        (first_child,) = [int(x) for x in children.read_text().split()]
        os.kill(first_leader, signal.SIGKILL)  # as the OOM killer would
        wait_until(lambda: not supervisor.ready, "the supervisor to see the kill", 30)
        wait_until(lambda: supervisor.ready, "the restarted server to be ready", 30)
        assert restarts == [("stand-in", 1)] and supervisor.restarts == 1
        assert not _alive(first_child)  # the old engine did not outlive its server
        second_leader = server.proc.pid  # type: ignore[union-attr]
        second_child = [int(x) for x in children.read_text().split()][1]
        assert second_leader != first_leader and _alive(second_child)
        os.kill(second_leader, signal.SIGKILL)  # and stop() with the leader already gone:
    finally:
        supervisor.stop()
    assert supervisor.state == "stopped"
    assert not _alive(second_child)
