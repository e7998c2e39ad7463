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

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=self.api_key, max_retries=0, timeout=300)


def _hone_env(data_dir: Path, catalog_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONE_")}
    env.update(HONE_DATA_DIR=str(data_dir), HONE_CATALOG_PATH=str(catalog_path), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def hone_process(tmp_path: Path, tiny_model_dir: Path) -> Iterator[ServerProcess]:
    data_dir = tmp_path / "data"
    catalog_path = tmp_path / "catalog.yaml"
    catalog_path.write_text(f"models:\n  - name: hone-tiny\n    source: {json.dumps(str(tiny_model_dir))}\n")
    env = _hone_env(data_dir, catalog_path)

    keys = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--project", "big"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert keys.returncode == 0, keys.stderr
    api_key = keys.stdout.strip().splitlines()[-1]
    assert api_key.startswith("sk-hone-"), keys.stdout

    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=env,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"hone serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                raise AssertionError(f"hone serve did not answer /healthz in 60 s:\n{log.read_text()}")
            time.sleep(0.1)
        yield ServerProcess(proc, base_url, api_key, data_dir, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
