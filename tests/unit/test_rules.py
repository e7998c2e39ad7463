"""Pure rules: "auto" hyperparameters, model-name grammar, JSONL line splitting."""

from __future__ import annotations

import pytest

from contract.hyperparameters import DpoHyperparameters, SupervisedHyperparameters
from contract.names import ModelName, is_fine_tuned_name
from service.validation.lines import LineSplitter, LineTooLong, iter_lines


@pytest.mark.parametrize(
    ("n", "epochs", "batch", "lr"),
    [(10, 10, 1, 2.0), (12, 8, 1, 2.0), (40, 3, 1, 2.0), (5000, 3, 10, 1.0), (20000, 1, 40, 0.5), (10**6, 1, 256, 0.5)],
)
def test_auto_resolution(n: int, epochs: int, batch: int, lr: float) -> None:
    got = SupervisedHyperparameters().resolve(n)
    assert (got.n_epochs, got.batch_size, got.learning_rate_multiplier) == (epochs, batch, lr)
    assert got.unresolved == [] and got.require_resolved() is got


def test_explicit_values_kept_and_dpo_beta() -> None:
    got = DpoHyperparameters(n_epochs=2, batch_size=8).resolve(100)
    assert (got.n_epochs, got.batch_size, got.learning_rate_multiplier, got.beta) == (2, 8, 1.0, 0.1)
    with pytest.raises(ValueError, match="still 'auto'"):
        DpoHyperparameters(n_epochs=2).require_resolved()


def test_model_names() -> None:
    final = str(ModelName("hone-tiny", "acme", None, "AbCdEfGh"))
    assert final == "ft:hone-tiny:acme::AbCdEfGh" and is_fine_tuned_name(final)
    ck = str(ModelName("hone-tiny", "acme", "s.v1", "AbCdEfGh", 40))
    assert ck == "ft:hone-tiny:acme:s.v1:AbCdEfGh:ckpt-step-40" and is_fine_tuned_name(ck)
    assert ModelName.parse(ck) == ModelName("hone-tiny", "acme", "s.v1", "AbCdEfGh", 40)
    for bad in (
        "ft:a:b:c",
        "ft:../x:acme::abcdefgh",
        "ft:a:acme::abcdefgh/../../x",
        "ft:a:ACME::abcdefgh",
        "hone-tiny",
    ):
        assert not is_fine_tuned_name(bad) and ModelName.parse(bad) is None


def test_line_splitter_across_chunks() -> None:
    data = b'\xef\xbb\xbf{"a":1}\r\n\n  \n{"b":"\xc3\xa9"}\n{"c":3}'
    for size in (1, 2, 5, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert list(iter_lines(chunks, 100)) == [(1, b'{"a":1}'), (4, b'{"b":"\xc3\xa9"}'), (5, b'{"c":3}')]


def test_line_too_long_names_the_line() -> None:
    s = LineSplitter(max_line_bytes=8)
    s.feed(b"ok\n")
    with pytest.raises(LineTooLong) as e:
        s.feed(b"0123456789")
    assert e.value.lineno == 2
