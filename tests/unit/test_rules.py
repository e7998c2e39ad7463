"""Pure rules: "auto" hyperparameters, model-name grammar, JSONL line splitting."""

from __future__ import annotations

import pytest

from service.jobs import hyperparameters as hp
from service.jobs import naming
from service.validation.lines import LineSplitter, LineTooLong, iter_lines


@pytest.mark.parametrize(("n", "epochs", "batch", "lr"), [
    (10, 10, 1, 2.0), (12, 8, 1, 2.0), (40, 3, 1, 2.0), (5000, 3, 10, 1.0), (20000, 1, 40, 0.5), (10**6, 1, 256, 0.5)])
def test_auto_resolution(n: int, epochs: int, batch: int, lr: float) -> None:
    got = hp.resolve(hp.defaults("supervised"), n)
    assert (got["n_epochs"], got["batch_size"], got["learning_rate_multiplier"]) == (epochs, batch, lr)


def test_explicit_values_kept_and_dpo_beta() -> None:
    got = hp.resolve({**hp.defaults("dpo"), "n_epochs": 2, "batch_size": 8}, 100)
    assert (got["n_epochs"], got["batch_size"], got["learning_rate_multiplier"], got["beta"]) == (2, 8, 1.0, 0.1)


def test_model_names() -> None:
    final = naming.final_name("hone-tiny", "acme", None)
    assert final.startswith("ft:hone-tiny:acme::") and naming.is_fine_tuned_name(final)
    ck = naming.checkpoint_name("hone-tiny", "acme", "s.v1", 40)
    assert ck.endswith(":ckpt-step-40") and ":s.v1:" in ck and naming.is_fine_tuned_name(ck)
    for bad in ("ft:a:b:c", "ft:../x:acme::abcdefgh", "ft:a:acme::abcdefgh/../../x", "ft:a:ACME::abcdefgh", "hone-tiny"):
        assert not naming.is_fine_tuned_name(bad)


def test_line_splitter_across_chunks() -> None:
    data = b'\xef\xbb\xbf{"a":1}\r\n\n  \n{"b":"\xc3\xa9"}\n{"c":3}'
    for size in (1, 2, 5, len(data)):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        assert list(iter_lines(chunks, 100)) == [(1, b'{"a":1}'), (4, b'{"b":"\xc3\xa9"}'), (5, b'{"c":3}')]


def test_line_too_long_names_the_line() -> None:
    s = LineSplitter(max_line_bytes=8)
    s.feed(b"ok\n")
    with pytest.raises(LineTooLong) as e:
        s.feed(b"0123456789")
    assert e.value.lineno == 2
