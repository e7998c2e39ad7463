"""The vLLM command line and environment ``inference.launch`` builds for ``hone up`` (issue 11,
findings 6 and 10): the API key only in the environment (``ps`` shows argv to every local user),
``--max-model-len`` from the catalog's context length, usage statistics off; LoRA for a
generate model, ``--runner pooling --convert embed`` and no LoRA for an embedding model
(the catalog's ``runner``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from inference.launch import API_KEY_ENV, VllmConfig, command, environment
from service.catalog.catalog import Catalog


def _cfg(tmp_path: Path, **kw: object) -> VllmConfig:
    return VllmConfig(
        name="hone-tiny",
        source="/models/tiny",
        storage_url="file:///b",
        cache_dir=tmp_path,
        port=8123,
        **kw,  # type: ignore[arg-type]
    )


def test_the_key_is_in_the_environment_only(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, api_key="s3cret", max_model_len=2048)
    argv, env = command(cfg), environment(cfg)
    assert "s3cret" not in " ".join(argv) and env[API_KEY_ENV] == "s3cret"
    assert argv[argv.index("--max-model-len") + 1] == "2048"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1"


def test_without_a_key_none_is_set(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert API_KEY_ENV not in environment(_cfg(tmp_path))


def test_a_generate_model_is_served_with_lora(tmp_path: Path) -> None:
    argv = command(_cfg(tmp_path, max_lora_rank=32))
    assert "--enable-lora" in argv and argv[argv.index("--max-lora-rank") + 1] == "32"
    assert "--runner" not in argv and "--convert" not in argv


def test_a_pooling_model_is_served_as_an_embedding_model_without_lora(tmp_path: Path) -> None:
    argv = command(_cfg(tmp_path, runner="pooling", max_model_len=512))
    assert argv[argv.index("--runner") + 1] == "pooling" and argv[argv.index("--convert") + 1] == "embed"
    assert not [a for a in argv if "lora" in a]
    assert argv[argv.index("--max-model-len") + 1] == "512"


def test_the_catalog_runner_defaults_to_generate_and_is_read_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "models:\n  - {name: chat, source: /m/chat}\n  - {name: embedder, source: /m/e5, runner: pooling}\n"
    )
    catalog = Catalog.from_yaml(path)
    assert [(e.name, e.runner) for e in catalog] == [("chat", "generate"), ("embedder", "pooling")]
    path.write_text("models:\n  - {name: x, source: /m/x, runner: embed}\n")
    with pytest.raises(ValidationError, match="runner"):
        Catalog.from_yaml(path)
