"""The baseline ``previous``: the trainer's SFT loss as it was before the chunked loss, kept here
only to measure against. It is ``trainer/losses.py`` at commit
9d80a30 (``git show 9d80a30:trainer/losses.py``: ``token_logps`` and ``sft_loss``), the parent of
1b2f285, which replaced it: per packed row the model's full-vocabulary logits, cast to fp32,
a log-softmax over the whole vocabulary at every position, the target's entry gathered, a
masked sum over the batch's trainable tokens; no activation checkpointing. With a 151,936-token
vocabulary that is a ``[tokens x vocabulary]`` fp32 tensor several times over per micro-batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainer.data import IGNORE, Example, pack
from trainer.losses import micro_batches


def token_logps(
    model: torch.nn.Module, row: dict[str, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-prob of each target token, target mask, argmax==target) for one packed row."""
    logits = (
        model(input_ids=row["input_ids"].to(device), position_ids=row["position_ids"].to(device), use_cache=False)
        .logits[:, :-1]
        .float()
    )
    targets = row["labels"][:, 1:].to(device)
    mask = targets != IGNORE
    logps = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    correct = (logits.argmax(-1) == targets) & mask
    return logps * mask, mask, correct


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
            logps, _, correct = token_logps(model, row, device)
            loss = -logps.sum() / total
            if backward:
                loss.backward()
        loss_sum += float(loss.detach())
        correct_sum += int(correct.sum())
        tokens += row["input_ids"].numel()
    return loss_sum, correct_sum / total, tokens
