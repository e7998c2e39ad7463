"""Supervised fine-tuning recipe: LoRA (default), QLoRA or full, on OpenAI chat-format data.

Per step: ``batch_size`` examples in the epoch's seeded order, packed padding-free, mean
cross-entropy over assistant tokens, AdamW, linear warmup and decay. Validation loss and token
accuracy on the validation file at each checkpoint and at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainer import data, distributed
from trainer.attempt import CHECKPOINT_ON_STOP, Attempt, Stop, steps_for
from trainer.losses import sft_loss
from trainer.model import load_tokenizer, load_trainable


def evaluate(
    model: torch.nn.Module, examples: Sequence[data.Example], attempt: Attempt, budget: int
) -> tuple[float, float]:
    model.eval()
    loss, acc, _ = sft_loss(model, examples, attempt.device, budget, backward=False)
    model.train()
    return loss, acc


def run(attempt: Attempt) -> None:
    spec, hp = attempt.spec, attempt.hp
    tok = load_tokenizer(spec.base_model_source)
    renderer = data.ChatRenderer(tok, int(tok.model_max_length or 4096))
    train = [renderer.sft(row) for row in data.read_jsonl(attempt.fetch(spec.training_file_uri, "train.jsonl"))]
    valid = (
        [renderer.sft(row) for row in data.read_jsonl(attempt.fetch(spec.validation_file_uri, "valid.jsonl"))]
        if spec.validation_file_uri
        else []
    )
    init = attempt.fetch_dir(spec.init_adapter_uri, "init") if spec.init_adapter_uri else None

    plan = attempt.plan(len(ex.input_ids) for ex in train + valid)
    torch.manual_seed(spec.seed)
    model = load_trainable(spec.base_model_source, hp, attempt.device, init, plan.gradient_checkpointing)
    model = distributed.wrap(model, plan.sharded)
    model.train()
    batch_size, n_epochs = int(hp.batch_size), int(hp.n_epochs)
    per_epoch, total = steps_for(len(train), batch_size, n_epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=attempt.learning_rate(), weight_decay=0.0)
    scheduler = attempt.scheduler(optimizer, total)
    start = attempt.begin(total, model, optimizer, scheduler)
    budget = plan.tokens_per_micro_batch

    for step in range(start, total):
        epoch, pos = divmod(step, per_epoch)
        order = data.epoch_order(len(train), spec.seed, epoch)
        batch = [train[i] for i in order[pos * batch_size : (pos + 1) * batch_size]]
        loss, acc, tokens = sft_loss(model, distributed.shard(batch), attempt.device, budget, backward=True)
        (loss, acc), (tokens_sum,) = distributed.mean_and_sum([loss, acc], [tokens], attempt.device)
        tokens = int(tokens_sum)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        n = step + 1
        checkpointing = attempt.should_checkpoint(n, per_epoch)
        valid_metrics = evaluate(model, valid, attempt, budget) if valid and (checkpointing or n == total) else None
        try:
            attempt.after_step(n, loss, acc, tokens, valid_metrics)
        except Stop as stop:
            if stop.reason in CHECKPOINT_ON_STOP:
                attempt.checkpoint(model, optimizer, scheduler, {"train_loss": loss, "train_mean_token_accuracy": acc})
            raise
        if checkpointing:
            metrics = {"train_loss": loss, "train_mean_token_accuracy": acc}
            if valid_metrics:
                metrics.update(valid_loss=valid_metrics[0], valid_mean_token_accuracy=valid_metrics[1])
            attempt.checkpoint(model, optimizer, scheduler, metrics)
    attempt.finish(model)
