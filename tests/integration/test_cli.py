"""The ``hone`` command: keys are printed once and work; bad names are refused cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai
from sqlalchemy import select

from service.auth import hash_secret
from service.db.schema import ApiKey
from service.db.session import Database
from tests.harness.server import fresh_database_url, start_server


def _hone(*args: str, data_dir: Path, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HONE_DATA_DIR": str(data_dir)}
    if database_url:
        env["HONE_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_keys_create_prints_a_working_key(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    db_url = fresh_database_url(tmp_path) or f"sqlite:///{tmp_path / 'hone.db'}"
    out = _hone("keys", "create", "--project", "team-a", data_dir=tmp_path, database_url=db_url)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("sk-hone-")
    db = Database(db_url)
    with db.session() as s:  # stored only as its hash
        stored = [(k.key_hash, k.display) for k in s.scalars(select(ApiKey))]
    db.dispose()
    assert stored == [(hash_secret(key), f"{key[:10]}...{key[-4:]}")]
    bad = _hone("keys", "create", "--project", "Not A Name", data_dir=tmp_path, database_url=db_url)
    assert bad.returncode == 2 and "Invalid project name" in bad.stderr and "Traceback" not in bad.stderr
    srv = start_server(tmp_path, catalog, database_url=db_url)
    try:
        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key=key, max_retries=0)
        assert [m.id for m in c.models.list()] == ["hone-tiny"]
    finally:
        srv.stop()


def test_make_tiny_model(tmp_path: Path) -> None:
    out = _hone("make-tiny-model", str(tmp_path / "m"), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "m").iterdir()}


def test_make_model_builds_into_the_data_dir_once(tmp_path: Path) -> None:
    out = _hone("make-model", "hone-tiny", "--data-dir", str(tmp_path), data_dir=tmp_path / "elsewhere")
    assert out.returncode == 0, out.stderr
    target = tmp_path / "models" / "hone-tiny"
    assert out.stdout.strip().splitlines()[-1] == str(target)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in target.iterdir()}
    again = _hone("make-model", "hone-tiny", data_dir=tmp_path)  # HONE_DATA_DIR: the same directory
    assert again.returncode == 0 and "already built" in again.stdout
    unknown = _hone("make-model", "llama-9000", data_dir=tmp_path)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "unknown built-in model 'llama-9000'; the built-in models are: hone-tiny, smollm2-135m-instruct" in (
        unknown.stderr
    )


def test_an_unknown_model_in_hone_models_stops_the_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONE_")}
    env.update(HONE_DATA_DIR=str(tmp_path), HONE_MODELS="hone-tiny,llama-9000")
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "HONE_MODELS names unknown built-in models ['llama-9000']" in out.stderr
    assert "the built-in models are: hone-tiny, smollm2-135m-instruct" in out.stderr
    assert not (tmp_path / "models").exists()
