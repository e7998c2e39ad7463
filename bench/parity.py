"""Parity: the trainer's losses against independent references, on the tiny model (fp32, CPU).

    python -m bench.parity [--seed S] [--pairs N] [--out PATH]

Prints the largest absolute difference of each comparison and writes them to
``bench/results/parity-cpu-tiny.json``. The model is hone's tiny test model with a LoRA adapter
(the recipe's defaults but dropout 0) whose ``lora_B`` is drawn at random (a fresh adapter's B
is zero, which would make every A gradient zero and the policy equal to the reference), in
training mode (in eval mode transformers would skip activation checkpointing).

1. SFT, one batch of 8 chat examples (``bench.training.rows``): ``trainer.losses.sft_loss``
   (chunked; with and without activation checkpointing; one packed row and 256-token
   micro-batches), the previous loss (``bench.training.previous``) and the naive padded
   ``model(**batch).loss``: the loss and every adapter gradient, each against the naive path.
2. ``trainer.losses.sequence_logps`` (per-example sums over packed rows) against a naive
   per-example sum: each example alone, full-vocabulary ``log_softmax``, the answer tokens'
   entries summed.
3. DPO: ``trainer.losses.dpo_loss`` against TRL's. When ``trl`` is importable, TRL's own code
   computes it: ``DPOTrainer._compute_loss`` (TRL's sigmoid DPO loss with its default
   ``DPOConfig``: ``loss_type=["sigmoid"]``, ``f_divergence_type="reverse_kl"``,
   ``label_smoothing=0``; beta 0.1, hone's default) called on a stand-in trainer holding those
   settings, (a) on fixed tensors of sequence log-probabilities (a stand-in model returns them),
   (b) on the tiny model itself, with TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``)
   over a padded [chosen; rejected] batch and precomputed reference log-probabilities, against
   hone's ``sequence_logps`` + ``dpo_loss``: the loss, the per-sequence log-probabilities and
   the adapter gradients. Without ``trl`` only the formula TRL's source uses
   (``-F.logsigmoid(beta * ((pi_c - pi_r) - (ref_c - ref_r)))``, written out here) is compared.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from bench.training import previous
from bench.training.rows import make_rows
from contract.hyperparameters import DEFAULT_BETA, SupervisedHyperparameters
from service.catalog.tiny import build_tiny_model
from trainer import data
from trainer.data import IGNORE, ChatRenderer, Example
from trainer.losses import dpo_loss, sequence_logps, sft_loss
from trainer.model import load_base, load_tokenizer, make_trainable

RESULTS = Path(__file__).resolve().parent / "results"
CPU = torch.device("cpu")
LOSS_TOL, GRAD_TOL = 1e-4, 1e-3  # bench.train's fp32 tolerances (gradients: of the largest entry)


def trl_version() -> str | None:
    try:
        import trl
    except ImportError:
        return None
    return str(trl.__version__)


# -- the model ----------------------------------------------------------------------------


def build(tiny: Path, seed: int, fused_head: bool) -> torch.nn.Module:
    """The tiny model with a LoRA adapter whose B is random (so A's gradients are not zero), no
    dropout, in training mode. ``fused_head``: TRL's fused LM head added to the base first, as
    TRL does."""
    hp = SupervisedHyperparameters(lora_dropout=0.0)
    torch.manual_seed(seed)
    base = load_base(str(tiny), hp, CPU)
    if fused_head:
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(base, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    model = make_trainable(base, hp, CPU, None)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    model.train()
    return model


def grads(model: torch.nn.Module) -> list[torch.Tensor]:
    out = [p.grad.detach().clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    return out


def grad_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> tuple[float, float]:
    """(largest absolute difference, that over the reference's largest entry)."""
    diff = max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))
    return diff, diff / max(float(y.abs().max()) for y in b)


def set_checkpointing(model: Any, on: bool) -> None:
    lm = model.get_base_model()
    if on:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        lm.gradient_checkpointing_disable()
        lm.disable_input_require_grads()


# -- 1. SFT -------------------------------------------------------------------------------


def sft(model: torch.nn.Module, batch: list[Example], pad_id: int) -> dict[str, Any]:
    out = model(**data.pad(batch, pad_id)).loss
    out.backward()
    ref_loss, ref_grads = float(out.detach()), grads(model)
    paths = {
        "sft_loss, one packed row": lambda: sft_loss(model, batch, CPU, 16384, backward=True)[0],
        "sft_loss, 256-token micro-batches": lambda: sft_loss(model, batch, CPU, 256, backward=True)[0],
        "previous loss (full-vocabulary logits)": lambda: previous.sft_loss(model, batch, CPU, 2048, backward=True)[0],
    }
    res: dict[str, Any] = {"reference": "naive padded model(**batch).loss", "loss_reference": ref_loss}
    for checkpointing in (False, True):
        set_checkpointing(model, checkpointing)
        for name, fn in paths.items():
            if checkpointing and name.startswith("previous"):
                continue
            loss = fn()
            absolute, relative = grad_diff(grads(model), ref_grads)
            key = f"{name}{', activation checkpointing' if checkpointing else ''}"
            res[key] = {"loss_abs_diff": abs(loss - ref_loss), "grad_max_abs_diff": absolute, "grad_max_rel": relative}
    set_checkpointing(model, False)
    return res


# -- 2. sequence log-probabilities ---------------------------------------------------------


def naive_sequence_logp(model: torch.nn.Module, ex: Example) -> torch.Tensor:
    """One example alone: full logits, log-softmax over the vocabulary, target entries summed."""
    logits = model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0, :-1].float()
    targets = torch.tensor(ex.labels[1:])
    mask = targets != IGNORE
    logps = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0)[:, None])[:, 0]
    return (logps * mask).sum()


def sequences(model: torch.nn.Module, examples: list[Example]) -> dict[str, Any]:
    with torch.no_grad():
        naive = torch.stack([naive_sequence_logp(model, ex) for ex in examples])
        out, rel = {}, {}
        for budget in (16384, 512):
            packed = torch.cat([s for s, _ in sequence_logps(model, examples, CPU, budget)])
            out[f"max_tokens {budget}"] = float((packed - naive).abs().max())
            rel[f"max_tokens {budget}"] = float(((packed - naive).abs() / naive.abs()).max())
    return {
        "n": len(examples),
        "sums_range": [float(naive.min()), float(naive.max())],
        "max_abs_diff": out,
        "max_rel_diff": rel,
        "note": "both sums in fp32 in different orders: a sum of ~900 log-probs near -7,700 moves in "
        "steps of ~5e-4, so the absolute difference is rounding; the relative one is the measure",
    }


# -- 3. DPO ---------------------------------------------------------------------------------


def trl_formula(pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor, beta: float) -> torch.Tensor:
    """TRL's sigmoid DPO loss per pair as its source writes it (``DPOTrainer._compute_loss``,
    ``loss_type == "sigmoid"``, reverse KL): ``-F.logsigmoid(beta * delta_score)`` with
    ``delta_score = (pi_c - ref_c) - (pi_r - ref_r)``."""
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr)))


class _Accelerator:
    """What ``_compute_loss`` asks of accelerate on one process."""

    device = CPU

    @staticmethod
    def gather_for_metrics(t: torch.Tensor) -> torch.Tensor:
        return t

    gather = gather_for_metrics

    @staticmethod
    def unwrap_model(m: Any) -> Any:
        return m


def trl_trainer(model: Any, beta: float) -> SimpleNamespace:
    """A stand-in ``DPOTrainer`` with TRL's default DPO settings (read from ``DPOConfig``) and
    precomputed reference log-probabilities, for calling ``DPOTrainer._compute_loss`` unbound."""
    from trl import DPOConfig

    with tempfile.TemporaryDirectory() as tmp:
        args = DPOConfig(output_dir=tmp, report_to=[], use_cpu=True, bf16=False, beta=beta)
    return SimpleNamespace(
        args=args,
        model=model,
        ref_model=None,
        accelerator=_Accelerator(),
        beta=args.beta,
        precompute_ref_logps=True,
        loss_types=args.loss_type,
        loss_weights=args.loss_weights or [1.0] * len(args.loss_type),
        ld_alpha=args.ld_alpha,
        f_divergence_type=args.f_divergence_type,
        f_alpha_divergence_coef=args.f_alpha_divergence_coef,
        label_smoothing=args.label_smoothing,
        use_weighting=args.use_weighting,
        aux_loss_enabled=False,
        router_aux_loss_coef=0.0,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )


def trl_loss(trainer: SimpleNamespace, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    from trl import DPOTrainer

    return DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)


def dpo_fixed(seed: int, beta: float, n: int = 64) -> dict[str, Any]:
    """Fixed sequence log-probabilities (sums of a few hundred tokens' log-probs)."""
    g = torch.Generator().manual_seed(seed)
    pc, pr, rc, rr = (-(torch.rand(n, generator=g, dtype=torch.float64) * 400 + 5) for _ in range(4))
    rc = pc + torch.randn(n, generator=g, dtype=torch.float64) * 3
    rr = pr + torch.randn(n, generator=g, dtype=torch.float64) * 3
    ours = dpo_loss(pc, pr, rc, rr, beta)[0]
    res: dict[str, Any] = {
        "pairs": n,
        "formula_per_pair_max_abs_diff": float((ours - trl_formula(pc, pr, rc, rr, beta)).abs().max()),
    }
    if trl_version():
        from trl.trainer.utils import FusedCausalLMOutput

        per_token = torch.cat([pc, pr])[:, None]  # one completion token per sequence carries its sum

        class Fixed:
            training = True

            def __call__(self, **_: Any) -> FusedCausalLMOutput:
                zeros = torch.zeros_like(per_token)
                return FusedCausalLMOutput(log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())

        inputs = {
            "input_ids": torch.zeros(2 * n, 2, dtype=torch.long),
            "attention_mask": torch.ones(2 * n, 2, dtype=torch.long),
            "completion_mask": torch.ones(2 * n, 2, dtype=torch.long),
            "ref_chosen_logps": rc,
            "ref_rejected_logps": rr,
        }
        theirs = trl_loss(trl_trainer(Fixed(), beta), Fixed(), inputs)
        res["trl_compute_loss_mean_abs_diff"] = abs(float(ours.mean()) - float(theirs))
        res["loss_mean"] = float(theirs)
    return res


def dpo_pairs(tok: Any, n: int, seed: int) -> list[tuple[Example, Example]]:
    """Prompts and answers of the bench's chat rows; the rejected answer is another row's."""
    rows = make_rows(tok, n + 1, seed, max_len=400)
    renderer = ChatRenderer(tok, 4096)
    return [
        renderer.dpo(
            {
                "input": {"messages": rows[i]["messages"][:2]},
                "preferred_output": rows[i]["messages"][2:],
                "non_preferred_output": rows[i + 1]["messages"][2:],
            }
        )
        for i in range(n)
    ]


def dpo_model(tiny: Path, tok: Any, seed: int, n: int, beta: float) -> dict[str, Any]:
    """hone's sequence_logps + dpo_loss against TRL's _compute_loss on the same tiny model."""
    model = build(tiny, seed, fused_head=True)
    pairs = dpo_pairs(tok, n, seed)
    chosen, rejected = [c for c, _ in pairs], [r for _, r in pairs]

    def logps(examples: list[Example]) -> torch.Tensor:
        return torch.cat([s for s, _ in sequence_logps(model, examples, CPU, 2048)])

    with torch.no_grad(), model.disable_adapter():  # the reference: the base, as TRL takes it for PEFT
        ref_c, ref_r = logps(chosen), logps(rejected)
    pc, pr = logps(chosen), logps(rejected)
    ours = dpo_loss(pc, pr, ref_c, ref_r, beta)[0].mean()
    ours.backward()
    ours_grads = grads(model)

    both = chosen + rejected
    padded = data.pad(both, tok.pad_token_id)
    completion = (padded["labels"] != IGNORE).long()
    inputs = {
        "input_ids": padded["input_ids"],
        "attention_mask": padded["attention_mask"],
        "completion_mask": completion,
        "ref_chosen_logps": ref_c,
        "ref_rejected_logps": ref_r,
    }
    theirs = trl_loss(trl_trainer(model, beta), model, inputs)
    theirs.backward()
    absolute, relative = grad_diff(ours_grads, grads(model))
    with torch.no_grad():
        labels = padded["input_ids"].masked_fill(completion == 0, IGNORE)
        trl_logps = model(**{k: inputs[k] for k in ("input_ids", "attention_mask")}, labels=labels, fused_lm_head=True)
        trl_sums = trl_logps.log_probs.sum(1)
    hone_sums = torch.cat([pc, pr]).detach()
    return {
        "pairs": n,
        "loss_hone": float(ours.detach()),
        "loss_trl": float(theirs),
        "loss_abs_diff": abs(float(ours) - float(theirs)),
        "sequence_logps_max_abs_diff_vs_trl_fused_head": float((hone_sums - trl_sums).abs().max()),
        "sequence_logps_max_rel_diff_vs_trl_fused_head": float(((hone_sums - trl_sums).abs() / trl_sums.abs()).max()),
        "sequence_logps_range": [float(trl_sums.min()), float(trl_sums.max())],
        "grad_max_abs_diff": absolute,
        "grad_max_rel": relative,
    }


# -- the run --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.parity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=4, help="DPO pairs on the model (default 4)")
    ap.add_argument("--out", type=Path, default=RESULTS / "parity-cpu-tiny.json")
    args = ap.parse_args(argv)
    beta = float(DEFAULT_BETA)
    with tempfile.TemporaryDirectory(prefix="hone-parity-") as tmp:
        tiny = build_tiny_model(Path(tmp) / "tiny")
        tok = load_tokenizer(str(tiny))
        renderer = ChatRenderer(tok, 4096)
        batch = [renderer.sft(r) for r in make_rows(tok, 8, args.seed)]
        model = build(tiny, args.seed, fused_head=False)
        result: dict[str, Any] = {
            "bench": "parity",
            "command": "python -m bench.parity " + " ".join(sys.argv[1:] if argv is None else argv),
            "versions": {"torch": torch.__version__, "trl": trl_version()},
            "model": "tiny (fp32, CPU), LoRA r=16 all-linear, dropout 0, random lora_B, training mode",
            "tolerances": {"loss_abs": LOSS_TOL, "grad_rel": GRAD_TOL},
            "sft": sft(model, batch, tok.pad_token_id),
            "sequence_logps": sequences(model, batch),
            "dpo_fixed": dpo_fixed(args.seed, beta),
            "dpo_beta": beta,
        }
        if trl_version():
            result["dpo_model"] = dpo_model(tiny, tok, args.seed, args.pairs, beta)
        else:
            result["dpo_model"] = {"skipped": "trl is not installed: only TRL's formula, written out, was compared"}
    result["ok"] = _ok(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report(result))
    print(f"wrote {args.out}")
    return result


def _ok(r: dict[str, Any]) -> bool:
    sft = [v for v in r["sft"].values() if isinstance(v, dict)]
    sft_ok = all(v["loss_abs_diff"] <= LOSS_TOL and v["grad_max_rel"] <= GRAD_TOL for v in sft)
    seq_ok = all(d <= 1e-5 for d in r["sequence_logps"]["max_rel_diff"].values())
    fixed = r["dpo_fixed"]
    dpo_ok = fixed["formula_per_pair_max_abs_diff"] <= 1e-12 and fixed.get("trl_compute_loss_mean_abs_diff", 0) <= 1e-12
    m = r["dpo_model"]
    if "loss_abs_diff" in m:
        dpo_ok = dpo_ok and m["loss_abs_diff"] <= LOSS_TOL and m["grad_max_rel"] <= GRAD_TOL
    return sft_ok and seq_ok and dpo_ok


def report(r: dict[str, Any]) -> str:
    trl = r["versions"]["trl"] or "not installed"
    lines = [f"parity on the tiny model (torch {r['versions']['torch']}, trl {trl})"]
    s = r["sft"]
    lines.append(f"SFT, one batch of 8, against the naive padded loss ({s['loss_reference']:.6f}):")
    for name, v in s.items():
        if isinstance(v, dict):
            lines.append(
                f"  {name}: |loss diff| {v['loss_abs_diff']:.2e}, gradients max |diff| {v['grad_max_abs_diff']:.2e} "
                f"({v['grad_max_rel']:.2e} of the largest)"
            )
    q = r["sequence_logps"]
    lines.append(
        f"sequence_logps vs per-example full log-softmax sums ({q['n']} examples, sums "
        f"{q['sums_range'][0]:.1f}..{q['sums_range'][1]:.1f}): "
        + ", ".join(
            f"{k}: max |diff| {v:.2e} ({q['max_rel_diff'][k]:.1e} relative)" for k, v in q["max_abs_diff"].items()
        )
    )
    f = r["dpo_fixed"]
    line = (
        f"DPO on {f['pairs']} fixed pairs (beta {r['dpo_beta']}): vs TRL's formula max |diff| "
        f"{f['formula_per_pair_max_abs_diff']:.2e}"
    )
    if "trl_compute_loss_mean_abs_diff" in f:
        line += f"; vs TRL's DPOTrainer._compute_loss (mean) |diff| {f['trl_compute_loss_mean_abs_diff']:.2e}"
    lines.append(line)
    m = r["dpo_model"]
    if "loss_abs_diff" in m:
        lines.append(
            f"DPO on the model, {m['pairs']} pairs: hone {m['loss_hone']:.6f} vs TRL {m['loss_trl']:.6f} "
            f"(|diff| {m['loss_abs_diff']:.2e}); sequence log-probs vs TRL's fused head max |diff| "
            f"{m['sequence_logps_max_abs_diff_vs_trl_fused_head']:.2e} "
            f"({m['sequence_logps_max_rel_diff_vs_trl_fused_head']:.1e} relative); gradients max |diff| "
            f"{m['grad_max_abs_diff']:.2e} ({m['grad_max_rel']:.2e} of the largest)"
        )
    else:
        lines.append(f"DPO on the model: {m['skipped']}")
    lines.append(f"-> {'OK' if r['ok'] else 'MISMATCH'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
