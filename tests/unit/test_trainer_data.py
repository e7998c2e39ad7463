"""Trainer data on the tiny model: assistant-only labels from the chat template, and packing
without attention across examples (the packed logits equal the separate ones)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.data import IGNORE, ChatRenderer, epoch_order, pack


@pytest.fixture(scope="module")
def renderer(tiny_model_dir: Path) -> ChatRenderer:
    from transformers import AutoTokenizer

    return ChatRenderer(AutoTokenizer.from_pretrained(tiny_model_dir), 2048)


def _trained_text(renderer: ChatRenderer, ex) -> str:  # type: ignore[no-untyped-def]
    return renderer.tok.decode([t for t, label in zip(ex.input_ids, ex.labels, strict=True) if label != IGNORE])


def test_loss_only_on_weighted_assistant_turns(renderer: ChatRenderer) -> None:
    ex = renderer.sft(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "Five.", "weight": 0},
                {"role": "user", "content": "Really?"},
                {"role": "assistant", "content": [{"type": "text", "text": "Four"}, {"type": "text", "text": "."}]},
            ]
        }
    )
    assert _trained_text(renderer, ex) == "Four.<|im_end|>\n"


def test_tool_calls_are_trained(renderer: ChatRenderer) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    ex = renderer.sft(
        {
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "12C"},
                {"role": "assistant", "content": "12C in Oslo."},
            ],
        }
    )
    text = _trained_text(renderer, ex)
    assert '"name": "weather"' in text and "12C in Oslo." in text and "Weather?" not in text


def test_dpo_pairs_mask_the_prompt(renderer: ChatRenderer) -> None:
    chosen, rejected = renderer.dpo(
        {
            "input": {"messages": [{"role": "user", "content": "Hi"}]},
            "preferred_output": [{"role": "assistant", "content": "Hello!"}],
            "non_preferred_output": [{"role": "assistant", "content": "Go."}],
        }
    )
    assert _trained_text(renderer, chosen) == "Hello!<|im_end|>\n"
    assert _trained_text(renderer, rejected) == "Go.<|im_end|>\n"


def test_packing_does_not_attend_across_examples(tiny_model_dir: Path, renderer: ChatRenderer) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    a = renderer.sft({"messages": [{"role": "user", "content": "One?"}, {"role": "assistant", "content": "1"}]})
    b = renderer.sft({"messages": [{"role": "user", "content": "Two, please?"}, {"role": "assistant", "content": "2"}]})
    row = pack([a, b])
    assert row["labels"][0, 0] == IGNORE and row["labels"][0, len(a.input_ids)] == IGNORE
    with torch.no_grad():
        packed = model(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False).logits[0]
        alone_b = model(input_ids=torch.tensor([b.input_ids]), use_cache=False).logits[0]
    torch.testing.assert_close(packed[len(a.input_ids) :], alone_b, rtol=1e-4, atol=1e-4)


def test_epoch_order_is_a_pure_function() -> None:
    assert epoch_order(10, 7, 0) == epoch_order(10, 7, 0) != epoch_order(10, 7, 1)
    assert sorted(epoch_order(10, 7, 3)) == list(range(10))
