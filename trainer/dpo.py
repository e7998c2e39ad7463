"""Direct Preference Optimization recipe on OpenAI's preference format.

The reference model is the model as the job starts (the base, or the fine-tuned model being
trained further); its log-probabilities of every preferred and non-preferred answer are computed
once, before any update, so no second copy of the model is kept. Per step: ``batch_size`` pairs
in the epoch's seeded order, chosen and rejected answers packed padding-free, sigmoid DPO loss
with ``beta``.
"""

from __future__ import annotations

import torch

from contract.hyperparameters import DpoHyperparameters
from trainer import data, distributed
from trainer.attempt import CHECKPOINT_ON_STOP, Attempt, Stop, steps_for
from trainer.losses import dpo_loss, sequence_logps
from trainer.model import load_tokenizer, load_trainable

DPO_LR_SCALE = 0.25  # DPO takes smaller steps than SFT from the same base learning rate


def logps(
    model: torch.nn.Module, examples: list[data.Example], attempt: Attempt, budget: int
) -> tuple[torch.Tensor, int]:
    parts, tokens = [], 0
    for sums, n in sequence_logps(model, examples, attempt.device, budget):
        parts.append(sums)
        tokens += n
    return torch.cat(parts), tokens


def run(attempt: Attempt) -> None:
    spec, hp = attempt.spec, attempt.hp
    assert isinstance(hp, DpoHyperparameters), f"the dpo recipe got {type(hp).__name__}"
    tok = load_tokenizer(spec.base_model_source)
    renderer = data.ChatRenderer(tok, int(tok.model_max_length or 4096))
    pairs = [renderer.dpo(row) for row in data.read_jsonl(attempt.fetch(spec.training_file_uri, "train.jsonl"))]
    init = attempt.fetch_dir(spec.init_adapter_uri, "init") if spec.init_adapter_uri else None

    plan = attempt.plan(len(ex.input_ids) for pair in pairs for ex in pair)
    budget = plan.tokens_per_micro_batch
    torch.manual_seed(spec.seed)
    model = load_trainable(spec.base_model_source, hp, attempt.device, init, plan.gradient_checkpointing)
    model = distributed.wrap(model, plan.sharded, grads_by_hand=True)
    model.eval()
    with torch.no_grad():
        ref_chosen, _ = logps(model, [c for c, _ in pairs], attempt, budget)
        ref_rejected, _ = logps(model, [r for _, r in pairs], attempt, budget)
    model.train()

    beta, batch_size, n_epochs = float(hp.beta), int(hp.batch_size), int(hp.n_epochs)
    per_epoch, total = steps_for(len(pairs), batch_size, n_epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=attempt.learning_rate() * DPO_LR_SCALE, weight_decay=0.0)
    scheduler = attempt.scheduler(optimizer, total)
    start = attempt.begin(total, model, optimizer, scheduler)

    for step in range(start, total):
        epoch, pos = divmod(step, per_epoch)
        batch = data.epoch_order(len(pairs), spec.seed, epoch)[pos * batch_size : (pos + 1) * batch_size]
        idx = distributed.shard(batch)
        chosen, n1 = logps(model, [pairs[i][0] for i in idx], attempt, budget)
        rejected, n2 = logps(model, [pairs[i][1] for i in idx], attempt, budget)
        losses, margins = dpo_loss(
            chosen, rejected, ref_chosen[idx].to(chosen.device), ref_rejected[idx].to(chosen.device), beta
        )
        losses.mean().backward()
        distributed.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        n = step + 1
        (loss, margin, reward_accuracy), (tokens,) = distributed.mean_and_sum(
            [float(losses.mean()), float(margins.mean()), float((margins > 0).float().mean())],
            [n1 + n2],
            attempt.device,
        )
        try:
            attempt.after_step(
                n,
                loss,
                reward_accuracy,
                int(tokens),
                extra={"reward_margin": margin, "reward_accuracy": reward_accuracy},
            )
        except Stop as stop:
            if stop.reason in CHECKPOINT_ON_STOP:
                attempt.checkpoint(model, optimizer, scheduler, {"train_loss": loss})
            raise
        if attempt.should_checkpoint(n, per_epoch):
            attempt.checkpoint(model, optimizer, scheduler, {"train_loss": loss})
    attempt.finish(model)
