"""Forward passes over packed rows: token losses, sequence log-probabilities, and token
accuracy, split into micro-batches by a token budget so a large batch never needs one huge
row. Results are sums, so splitting changes nothing numerically but the summation order.

The LM head never runs over a whole row. The decoder's final hidden states are taken, only the
positions that are targets (assistant tokens) are kept, and the head and the cross-entropy run
over those in chunks of ``chunk_tokens(vocab)`` positions: a chunk's ``[positions x vocabulary]``
fp32 logits exist only while that chunk is computed, never for the whole micro-batch. With a
151,936-token vocabulary a 2,048-token row's logits alone were 1.2 GB per copy, and the old loss
kept several copies.

Two ways to get a chunk's gradient back to the hidden states:

- a frozen head (LoRA, and every method that leaves the head alone; gathered whole if FSDP2
  shards it): the gradient of each
  target's log-prob with respect to its hidden state, ``W[t] - softmax(h W^T) W``, is computed in
  the forward pass while the chunk's logits exist, and kept (``[positions x hidden]``, the size of
  the hidden states themselves). Backward only scales it by the upstream gradient of each
  log-prob, so any loss built on per-token log-probs (SFT's mean, DPO's sequence sums) works,
  and the head's matmul runs twice per chunk as in a plain backward, never three times.
- a trainable head (full fine-tuning): each chunk runs under activation checkpointing and is
  recomputed in backward, which also gives the head's own gradient.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.distributed.tensor import DTensor
from torch.utils.checkpoint import checkpoint

from trainer.data import IGNORE, Example, pack

# Elements of one chunk's fp32 logits (128 MiB); the loss holds about three such buffers at once
# (logits, log-softmax, and in backward their gradient).
CHUNK_ELEMENTS = 1 << 25


def chunk_tokens(vocab_size: int) -> int:
    return max(64, CHUNK_ELEMENTS // max(1, vocab_size))


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


def _causal_lm(model: torch.nn.Module) -> Any:
    """The transformers model under DDP's and PEFT's wrappers (PEFT's layers stay in place)."""
    inner: Any = getattr(model, "module", model)
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner


@dataclass
class Targets:
    """The predicted positions of one packed row: where each sits, its target token, and the
    example it belongs to."""

    positions: torch.Tensor  # indices into the row's hidden states (position t predicts t + 1)
    tokens: torch.Tensor
    sequence: torch.Tensor


def targets_of(row: dict[str, torch.Tensor], device: torch.device) -> Targets:
    labels = row["labels"][0, 1:]
    positions = (labels != IGNORE).nonzero().squeeze(-1)
    return Targets(positions.to(device), labels[positions].to(device), row["sequence_ids"][0, 1:][positions].to(device))


def final_hidden(model: torch.nn.Module, row: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    """The decoder's last hidden states ``[tokens, hidden]`` for one packed row.

    The forward goes through the outermost wrapper (DDP must see it), asking the LM head for one
    position only; a hook on the decoder keeps its output, which is the head's input."""
    lm = _causal_lm(model)
    captured: list[torch.Tensor] = []

    def keep(_module: torch.nn.Module, _args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    handle = lm.get_decoder().register_forward_hook(keep)
    try:
        model(
            input_ids=row["input_ids"].to(device),
            position_ids=row["position_ids"].to(device),
            use_cache=False,
            logits_to_keep=1,
        )
    finally:
        handle.remove()
    return captured[-1][0]


def _head_logps(
    hidden: torch.Tensor, tokens: torch.Tensor, head: torch.nn.Module, softcap: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(hidden).float()  # the module, not its weight: FSDP gathers a sharded head in its hooks
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    logps = -F.cross_entropy(logits, tokens, reduction="none")
    return logps, logits.argmax(-1) == tokens


class _FrozenHeadLogps(torch.autograd.Function):
    """Log-probs of ``tokens`` under a frozen linear head, chunk by chunk, with each position's
    gradient with respect to its hidden state computed while the chunk's logits exist."""

    @staticmethod
    def forward(
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, tokens: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = hidden.shape[0]
        logps = hidden.new_empty(n, dtype=torch.float32)
        correct = torch.empty(n, dtype=torch.bool, device=hidden.device)
        grads = torch.empty_like(hidden)
        for start in range(0, n, step):
            h, t = hidden[start : start + step], tokens[start : start + step]
            # log_softmax, not logits[t] - logsumexp: a confident model's log-prob is a small number
            # that the difference of two large ones would round (fp32: ~2e-6 at logits near 20)
            logp = torch.log_softmax(F.linear(h, weight).float(), -1)  # F.linear: as the head computes it
            rows = torch.arange(t.shape[0], device=t.device)
            logps[start : start + step] = logp[rows, t]
            correct[start : start + step] = logp.argmax(-1) == t
            probs = logp.exp_()  # softmax, in the log-probs' own buffer
            probs[rows, t] -= 1.0  # d(-log p_t)/d logits
            grads[start : start + step] = -(probs.to(weight.dtype) @ weight)
        ctx.save_for_backward(grads)
        ctx.mark_non_differentiable(correct)
        return logps, correct

    @staticmethod
    def backward(ctx: Any, grad_logps: torch.Tensor, _grad_correct: Any) -> tuple[torch.Tensor | None, ...]:
        (grads,) = ctx.saved_tensors
        return grads * grad_logps[:, None].to(grads.dtype), None, None, None


def _frozen_whole_weight(head: torch.nn.Module) -> torch.Tensor | None:
    """The head's whole weight when it is frozen (the fast path), else None. A head FSDP2 shards
    (LoRA on a base too large for one rank) is gathered, as FSDP's own forward would gather it;
    every rank calls this once per micro-batch (the forward before it is collective too)."""
    weight = head.weight
    if not isinstance(weight, torch.Tensor) or weight.requires_grad:
        return None
    return weight.full_tensor() if isinstance(weight, DTensor) else weight


def target_logps(
    model: torch.nn.Module, row: dict[str, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, Targets]:
    """(log-prob of each target token, whether the model's argmax was it, the targets) for one
    packed row, the LM head run chunk by chunk over the target positions only."""
    lm = _causal_lm(model)
    targets = targets_of(row, device)
    hidden = final_hidden(model, row, device).index_select(0, targets.positions)
    head = lm.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        raise ValueError(f"the chunked loss needs a plain linear LM head without bias, not {head!r}")
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    step = chunk_tokens(int(head.out_features))
    weight = _frozen_whole_weight(head) if torch.is_grad_enabled() and not softcap else None
    if hidden.shape[0] == 0:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, empty.bool(), targets
    if weight is not None and hidden.requires_grad:
        logps, correct = _FrozenHeadLogps.apply(hidden, weight, targets.tokens, step)
        return logps, correct, targets
    parts, hits = [], []
    for start in range(0, hidden.shape[0], step):
        h, t = hidden[start : start + step], targets.tokens[start : start + step]
        if torch.is_grad_enabled():
            logps, correct = checkpoint(_head_logps, h, t, head, softcap, use_reentrant=False)
        else:
            logps, correct = _head_logps(h, t, head, softcap)
        parts.append(logps)
        hits.append(correct)
    return torch.cat(parts), torch.cat(hits), targets


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
            logps, correct, _ = target_logps(model, row, device)
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
        logps, _, targets = target_logps(model, row, device)
        sums = torch.zeros(len(chunk), device=device, dtype=logps.dtype).index_add(0, targets.sequence, logps)
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
