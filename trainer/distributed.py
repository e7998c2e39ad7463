"""Data parallelism over ``torch.distributed`` (torchrun): each rank trains on its share of a
batch; gradients and step statistics are averaged across ranks. Outside a distributed run every
function here is the identity.

How the model is spread (``wrap``, as the memory plan decides): full fine-tuning is sharded with
FSDP2 (``fully_shard`` on every decoder layer, the LM head when it is not tied, then the root),
so weights, gradients and AdamW state are split across the ranks instead of whole on each (8B:
~128 GB per GPU under DDP); so is LoRA on a base too large for a whole copy per rank. Otherwise
LoRA keeps a whole copy of the (frozen) base per rank and averages only the adapter's gradients,
through DDP or, for recipes with several forward passes per backward (DPO), by hand. Saving and
resuming a sharded model go through ``torch.distributed.checkpoint``'s full state dicts, so a
checkpoint's files are the same whatever the number of ranks that wrote or read them."""

from __future__ import annotations

from typing import Any, TypeVar, cast

import torch
from torch.distributed.tensor import DTensor

T = TypeVar("T")


def active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world() -> tuple[int, int]:
    """(world size, this rank)."""
    if active():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (unchanged when not distributed)."""
    if not active():
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def shard(items: list[T]) -> list[T]:
    """This rank's share of a batch (every ``world``-th item from its rank)."""
    size, rank = world()
    return items[rank::size] if size > 1 else items


def wrap(model: torch.nn.Module, sharded: bool, grads_by_hand: bool = False) -> torch.nn.Module:
    """The model ready for this run's ranks (see the module docstring): sharded with FSDP2 when
    the memory plan says so, else DDP or, for ``grads_by_hand``, as it is."""
    size, _ = world()
    if size == 1:
        return model
    if sharded:
        inner: Any = model
        _fully_shard(inner.get_base_model() if hasattr(inner, "get_base_model") else inner)  # under PEFT's wrapper
        return model
    return model if grads_by_hand else torch.nn.parallel.DistributedDataParallel(model)


def _fully_shard(model: torch.nn.Module) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    layer_types = set(getattr(model, "_no_split_modules", None) or ())  # transformers' decoder-layer classes
    layers = [m for m in model.modules() if type(m).__name__ in layer_types]
    if not layers:
        raise ValueError(f"cannot shard {type(model).__name__}: it names no decoder-layer class (_no_split_modules)")
    for layer in layers:
        fully_shard(layer)
    head = model.get_output_embeddings()  # type: ignore[operator]
    if head is not None and not getattr(model.config, "tie_word_embeddings", False):
        fully_shard(head)  # a tied head shares the embedding's weight: it stays in the root group
    fully_shard(model)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP2 shards ``model`` or (under PEFT's wrapper) a module inside it."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The whole model's weights on the CPU (a collective: every rank calls it; rank 0 gets
    them), or None for a model that is not sharded (it saves itself)."""
    if not is_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return cast("dict[str, torch.Tensor]", state)  # a model's state: tensors only


def load_full_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(
        model, cast("dict[str, Any]", state), options=StateDictOptions(full_state_dict=True, strict=False)
    )


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's whole state (a collective under FSDP, keyed by parameter name there)."""
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return dict(get_optimizer_state_dict(model, optimizer, options=options))


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Gradients averaged over the ranks (what DDP does, without its forward wrapper: a recipe
    with several forward passes per backward, as DPO's chosen and rejected answers, needs this).
    Sharded parameters' gradients were already reduced by FSDP."""
    size, _ = world()
    if size == 1 or any(isinstance(p, DTensor) for p in params):
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad)
        p.grad /= size


def mean_and_sum(means: list[float], sums: list[float], device: torch.device) -> tuple[list[float], list[float]]:
    """Per-rank means averaged and per-rank sums added, across the ranks."""
    size, _ = world()
    if size == 1:
        return means, sums
    t = torch.tensor([*means, *sums], device=device, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    values = t.tolist()
    return [v / size for v in values[: len(means)]], values[len(means) :]


def checksum(params: list[torch.nn.Parameter]) -> float:
    """A float that differs between ranks whose weights differ (logged: ranks must agree)."""
    with torch.no_grad():
        whole = [p.full_tensor() if isinstance(p, DTensor) else p for p in params]  # a collective if sharded
        return float(sum(p.double().sum() + (p.double() ** 2).sum() for p in whole))
