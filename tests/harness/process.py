"""``hone serve`` as its own process (as an operator runs it), for tests that measure the
process itself: its memory, what it imports, how it survives signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.harness.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of ``pid`` in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    api_key: str
    data_dir: Path
    log: Path
    env: dict[str, str] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def new_key(self, project: str) -> str:
        """A new API key of ``project`` (created if new), made as an operator does: ``hone keys create``."""
        return create_key(self.env or {}, project)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=self.api_key, max_retries=0, timeout=300)


def _hone_env(data_dir: Path, catalog_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONE_")}
    env.update(HONE_DATA_DIR=str(data_dir), HONE_CATALOG_PATH=str(catalog_path), PYTHONUNBUFFERED="1")
    return env


def create_key(env: dict[str, str], project: str) -> str:
    keys = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--project", project],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert keys.returncode == 0, keys.stderr
    key = keys.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-hone-"), keys.stdout
    return key


class HoneServe:
    """``hone serve`` as an operator runs it: its own process on a data dir under ``workdir``
    with the model at ``model_dir`` and an API key for project ``big``. ``start`` launches it
    and waits for /healthz; ``kill`` sends a signal (SIGKILL by default) and reaps it; a second
    ``start`` is a restart on the same data dir and port."""

    command = "serve"
    stop_timeout_s = 20.0  # after the signal, before SIGKILL

    def __init__(
        self, workdir: Path, model_dir: Path, *, env: dict[str, str] | None = None, upstreams: list[str] | None = None
    ) -> None:
        self.data_dir, self.log = workdir / "data", workdir / "server.log"
        catalog_path = workdir / "catalog.yaml"
        catalog_path.write_text(
            f"models:\n  - name: hone-tiny\n    source: {json.dumps(str(model_dir))}\n"
            f"    upstreams: {json.dumps(upstreams or [])}\n"
        )
        self._prepare({**_hone_env(self.data_dir, catalog_path), **(env or {})})

    def _prepare(self, env: dict[str, str]) -> None:
        self.env = env
        self.api_key = create_key(self.env, "big")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> ServerProcess:
        argv = [
            sys.executable,
            "-m",
            "service.cli",
            self.command,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        with self.log.open("ab") as log_fh:
            self.proc = proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log_fh, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"hone {self.command} exited with {proc.returncode}:\n{self.log.read_text()[-5000:]}"
                )
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return ServerProcess(proc, self.base_url, self.api_key, self.data_dir, self.log, self.env)
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                raise AssertionError(f"hone {self.command} did not answer /healthz in {timeout_s:.0f} s")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class HoneUp(HoneServe):
    """``hone up`` as a user runs it: no catalog file, the built-in models named in
    ``HONE_MODELS`` (``models``: name -> a directory that model was built into, linked where
    ``hone up`` looks for it, ``data/models/NAME``, so nothing is built again), the local trainer
    launcher and one supervised vLLM per model. Its /healthz answers once every vLLM is
    healthy (``hone up`` waits for them before it serves), so ``start`` needs minutes."""

    command = "up"
    stop_timeout_s = 90.0  # Ctrl-C stops each vLLM (SIGTERM, up to 20 s) before hone up exits

    def __init__(self, workdir: Path, models: dict[str, Path], *, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.log = workdir / "data", workdir / "server.log"
        for name, built in models.items():
            link = self.data_dir / "models" / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(built.resolve(), target_is_directory=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("HONE_")}
        base.update(HONE_DATA_DIR=str(self.data_dir), HONE_MODELS=",".join(models), PYTHONUNBUFFERED="1")
        self._prepare({**base, **(env or {})})


@contextmanager
def hone_up(
    workdir: Path, models: dict[str, Path], *, env: dict[str, str] | None = None, timeout_s: float = 900
) -> Iterator[ServerProcess]:
    """A started ``HoneUp``, stopped with SIGINT (as Ctrl-C, which stops its vLLMs) at the end."""
    server = HoneUp(workdir, models, env=env)
    try:
        yield server.start(timeout_s)
    finally:
        server.kill(signal.SIGINT)


@contextmanager
def hone_serve(
    workdir: Path, model_dir: Path, *, env: dict[str, str] | None = None, upstreams: list[str] | None = None
) -> Iterator[ServerProcess]:
    """A started ``HoneServe``, stopped with SIGINT (as Ctrl-C) at the end."""
    server = HoneServe(workdir, model_dir, env=env, upstreams=upstreams)
    try:
        yield server.start()
    finally:
        server.kill(signal.SIGINT)


@pytest.fixture
def hone_process(tmp_path: Path, tiny_model_dir: Path) -> Iterator[ServerProcess]:
    with hone_serve(tmp_path, tiny_model_dir) as server:
        yield server
