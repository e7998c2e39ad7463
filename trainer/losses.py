"""Forward passes over packed rows: token losses, sequence log-probabilities, and token
accuracy, split into micro-batches by a token budget so a large batch never needs one huge
row. Results are sums, so splitting changes nothing numerically but the summation order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from trainer.data import IGNORE, Example, pack


def micro_batches(examples: Sequence[Example], max_tokens: int) -> Iterator[list[Example]]:
    chunk: list[Example] = []
    size = 0
    for ex in examples:
        if chunk and size + len(ex.input_ids) > max_tokens:
            yield chunk
            chunk, size = [], 0
        chunk.append(ex)
        size += len(ex.input_ids)
    if chunk:
        yield chunk


def token_logps(
    model: torch.nn.Module, row: dict[str, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-prob of each target token, target mask, argmax==target, sequence id) for one row."""
    logits = (
        model(input_ids=row["input_ids"].to(device), position_ids=row["position_ids"].to(device), use_cache=False)
        .logits[:, :-1]
        .float()
    )
    targets = row["labels"][:, 1:].to(device)
    mask = targets != IGNORE
    safe = targets.clamp(min=0)
    logps = torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    correct = (logits.argmax(-1) == targets) & mask
    return logps * mask, mask, correct, row["sequence_ids"][:, 1:].to(device)


def sft_loss(
    model: torch.nn.Module, examples: Sequence[Example], device: torch.device, max_tokens: int, backward: bool
) -> tuple[float, float, int]:
    """Mean token cross-entropy over the batch's trainable tokens (gradients accumulated when
    ``backward``); returns (loss, token accuracy, tokens processed)."""
    total = sum(ex.n_trainable - (1 if ex.labels and ex.labels[0] != IGNORE else 0) for ex in examples)
    total = max(total, 1)
    loss_sum, correct_sum, tokens = 0.0, 0, 0
    for chunk in micro_batches(examples, max_tokens):
        row = pack(chunk)
        with torch.set_grad_enabled(backward):
            logps, mask, correct, _ = token_logps(model, row, device)
            loss = -logps.sum() / total
            if backward:
                loss.backward()
        loss_sum += float(loss.detach())
        correct_sum += int(correct.sum())
        tokens += row["input_ids"].numel()
    return loss_sum, correct_sum / total, tokens


def sequence_logps(
    model: torch.nn.Module, examples: Sequence[Example], device: torch.device, max_tokens: int
) -> Iterator[tuple[torch.Tensor, int]]:
    """Per-example sums of target log-probs, one micro-batch at a time (with grad if enabled)."""
    for chunk in micro_batches(examples, max_tokens):
        row = pack(chunk)
        logps, _, _, seq = token_logps(model, row, device)
        sums = torch.zeros(len(chunk), device=device, dtype=logps.dtype).index_add(0, seq[0], logps[0])
        yield sums, row["input_ids"].numel()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid DPO loss (Rafailov et al. 2023) per pair, and the implicit reward margin."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(margin), margin
