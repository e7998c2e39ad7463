"""The training bench's own logic: its run order, its data lengths, and that its agreement check
compares the recipe (with activation checkpointing on), the previous loss and the naive loop."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from bench.training.model import hyperparameters
from bench.training.rows import make_batches, parse_lengths
from bench.training.runs import Comparison, alternation
from trainer.model import load_base, load_tokenizer, make_trainable


def test_alternation_puts_every_run_in_every_place() -> None:
    assert ["".join(alternation("ab", k)) for k in range(4)] == ["ab", "ba", "ba", "ab"]
    three = {"".join(alternation("abc", k)) for k in range(6)}
    assert three == {"".join(p) for p in itertools.permutations("abc")}


def test_lengths() -> None:
    assert parse_lengths("chat") == "chat"
    assert parse_lengths("1000") == "1000"
    for bad in ("10", "5000", "long"):
        with pytest.raises(ValueError):
            parse_lengths(bad)


def test_three_runs_agree_with_checkpointing_on(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(str(tiny_model_dir))
    examples, batches = make_batches(tok, 2, 3, seed=0, lengths="200")
    assert all(195 <= len(ex.input_ids) <= 215 for ex in examples)
    hp = hyperparameters()
    torch.manual_seed(0)
    model = make_trainable(load_base(str(tiny_model_dir), hp, torch.device("cpu")), hp, torch.device("cpu"), None, True)
    cmp = Comparison(model, torch.device("cpu"), 2048, tok.pad_token_id, batches, 1, checkpointing=True)
    cmp.run_warmup()  # one step each: the adapters' B leave zero, so every gradient is compared
    check = cmp.check()
    assert check["ok"] is True, check
    assert set(check["against_reference"]) == {"recipe", "previous"}
    assert check["reference"] == "naive"
    lm = model.get_base_model()
    cmp.activate(cmp.get("recipe"))
    assert lm.is_gradient_checkpointing
    cmp.activate(cmp.get("naive"))
    assert not lm.is_gradient_checkpointing
