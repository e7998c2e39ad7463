"""The ``hone`` command: keys are printed once and work; bad names are refused cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai

from tests.conftest import start_server


def _hone(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HONE_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, capture_output=True, text=True, timeout=120)


def test_keys_create_prints_a_working_key(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    out = _hone("keys", "create", "--project", "team-a", data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("sk-hone-")
    assert key not in (tmp_path / "hone.db").read_bytes().decode("latin-1")  # stored only as a hash
    bad = _hone("keys", "create", "--project", "Not A Name", data_dir=tmp_path)
    assert bad.returncode == 2 and "Invalid project name" in bad.stderr and "Traceback" not in bad.stderr
    srv = start_server(tmp_path, catalog)
    try:
        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key=key, max_retries=0)
        assert [m.id for m in c.models.list()] == ["hone-tiny"]
    finally:
        srv.stop()


def test_make_tiny_model(tmp_path: Path) -> None:
    out = _hone("make-tiny-model", str(tmp_path / "m"), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "m").iterdir()}
