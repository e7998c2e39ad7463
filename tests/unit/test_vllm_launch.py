"""The vLLM command line and environment ``inference.launch`` builds for ``hone up`` (issue 11,
findings 6 and 10): the API key only in the environment (``ps`` shows argv to every local user),
``--max-model-len`` from the catalog's context length, usage statistics off."""

from __future__ import annotations

from pathlib import Path

from inference.launch import API_KEY_ENV, VllmConfig, command, environment


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
