"""The built-in models and the embedded default catalog: ``HONE_MODELS`` names models of the one
registry (``service/catalog/builtin.py``), an unknown name is refused before anything is built,
each model is built once into the data dir (atomically: no half-built directory, no leftovers)
and offered with its registry settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.catalog import builtin
from service.catalog.catalog import DEFAULT_MODEL, default_catalog
from service.config import Settings


def test_the_registry_names_the_built_in_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HONE_MODELS", raising=False)
    assert list(builtin.BUILTIN_MODELS) == ["hone-tiny", "smollm2-135m-instruct"]
    assert DEFAULT_MODEL in builtin.BUILTIN_MODELS
    assert Settings().models == [DEFAULT_MODEL]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("smollm2-135m-instruct", ["smollm2-135m-instruct"]),
        ("hone-tiny, smollm2-135m-instruct", ["hone-tiny", "smollm2-135m-instruct"]),
        ('["hone-tiny", "smollm2-135m-instruct"]', ["hone-tiny", "smollm2-135m-instruct"]),
    ],
)
def test_hone_models_is_comma_separated_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("HONE_MODELS", value)
    assert Settings().models == expected


@pytest.mark.parametrize("models", [["hone-tiny", "llama-9000"], []])
def test_unknown_or_no_models_are_refused_before_anything_is_built(tmp_path: Path, models: list[str]) -> None:
    with pytest.raises(builtin.UnknownModel) as e:
        default_catalog(tmp_path, models)
    assert e.value.message.startswith("HONE_MODELS names ")
    assert "the built-in models are: hone-tiny, smollm2-135m-instruct" in e.value.message
    if models:
        assert "llama-9000" in e.value.message
    assert not (tmp_path / "models").exists()


def test_each_model_is_built_once_and_offered(tmp_path: Path) -> None:
    catalog = default_catalog(tmp_path, ["hone-tiny"])
    [entry] = list(catalog)
    target = tmp_path / "models" / "hone-tiny"
    assert entry.name == "hone-tiny" and entry.source == str(target)
    assert entry.max_lora_rank == builtin.get("hone-tiny").max_lora_rank
    assert entry.resolved_context_length() == 2048  # from the built config.json
    weights = (target / "model.safetensors").stat()
    again = default_catalog(tmp_path, ["hone-tiny", "hone-tiny"])  # built already; a repeated name is one entry
    assert [e.name for e in again] == ["hone-tiny"]
    assert (target / "model.safetensors").stat().st_ino == weights.st_ino
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["hone-tiny"]  # no .build leftovers


def test_build_refuses_an_unknown_name_and_a_target_that_holds_a_model(tmp_path: Path) -> None:
    with pytest.raises(builtin.UnknownModel, match="hone-tiny, smollm2-135m-instruct"):
        builtin.build("nope", tmp_path / "nope")
    target = builtin.build("hone-tiny", tmp_path / "hone-tiny")
    with pytest.raises(OSError):
        builtin.build("hone-tiny", target)  # the model in place stands
    assert builtin.is_built(target) and [p.name for p in tmp_path.iterdir()] == ["hone-tiny"]
