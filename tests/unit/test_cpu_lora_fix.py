"""vLLM's CPU LoRA ops give a token of no adapter (index -1) the last slot's adapter; the fix
hone's plugin applies keeps those rows untouched (inference/cpu_lora_fix.py)."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vLLM")


def slots(n: int, rows: int, cols: int):  # type: ignore[no-untyped-def]
    """n adapter slots, each filled with its own number (slot 0: 1.0, slot 1: 2.0, ...)."""
    import torch

    return torch.stack([torch.full((1, rows, cols), float(i + 1)) for i in range(n)])


def test_the_ops_leave_base_tokens_alone_and_adapter_tokens_as_before() -> None:
    import torch
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    from inference import cpu_lora_fix

    cpu_lora_fix.apply()
    assert cpu_lora_fix.apply()  # idempotent
    assert not cpu_lora_fix.picks_last_slot_for_no_adapter(lora_ops.bgmv_shrink)
    assert punica_cpu.bgmv_shrink is lora_ops.bgmv_shrink

    x = torch.ones(3, 2)
    idx = torch.tensor([-1, 0, 3])  # base token, slot 0, the last of 4 slots
    shrunk = torch.zeros(3, 1)
    lora_ops.bgmv_shrink(x, slots(4, 1, 2), shrunk, idx, 1.0)
    assert shrunk[:, 0].tolist() == [0.0, 2.0, 8.0]

    out = torch.full((3, 2), 10.0)  # the base layer's output, which LoRA adds to
    lora_ops.bgmv_expand(torch.ones(3, 1), slots(4, 2, 1), out, idx, True)
    assert out.tolist() == [[10.0, 10.0], [11.0, 11.0], [14.0, 14.0]]

    sliced = torch.full((3, 4), 10.0)
    lora_ops.bgmv_expand_slice(torch.ones(3, 1), slots(4, 2, 1), sliced, idx, 2, 2, True)
    assert sliced.tolist() == [[10.0] * 4, [10.0, 10.0, 11.0, 11.0], [10.0, 10.0, 14.0, 14.0]]

    prefill = torch.zeros(3, 1)  # sgmv: per-sequence indices, exploded to tokens
    lora_ops.sgmv_shrink(
        x, slots(4, 1, 2), prefill, torch.tensor([0, 2]), torch.tensor([2, 1]), torch.tensor([-1, 3]), 2, 2, 3, 1.0
    )
    assert prefill[:, 0].tolist() == [0.0, 0.0, 8.0]


def test_the_probe_sees_the_fault_in_an_unwrapped_op() -> None:
    import torch

    from inference import cpu_lora_fix

    def faulty(inputs, weights, output, indices, scaling=1.0):  # type: ignore[no-untyped-def]
        output[:] = scaling * torch.einsum("bi, boi -> bo", inputs, weights[indices].squeeze(1))

    assert cpu_lora_fix.picks_last_slot_for_no_adapter(faulty)
    assert not cpu_lora_fix.picks_last_slot_for_no_adapter(cpu_lora_fix.keep_no_adapter_rows(faulty))
