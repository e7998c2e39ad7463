"""Data parallelism over ``torch.distributed`` (torchrun): each rank trains on its share of a
batch; gradients and step statistics are averaged across ranks. Outside a distributed run every
function here is the identity."""

from __future__ import annotations

from typing import TypeVar

import torch

T = TypeVar("T")


def active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world() -> tuple[int, int]:
    """(world size, this rank)."""
    if active():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def shard(items: list[T]) -> list[T]:
    """This rank's share of a batch (every ``world``-th item from its rank)."""
    size, rank = world()
    return items[rank::size] if size > 1 else items


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Gradients averaged over the ranks (what DDP does, without its forward wrapper: a recipe
    with several forward passes per backward, as DPO's chosen and rejected answers, needs this)."""
    size, _ = world()
    if size == 1:
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
        return float(sum(p.double().sum() + (p.double() ** 2).sum() for p in params))
