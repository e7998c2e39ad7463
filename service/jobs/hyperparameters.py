"""How ``"auto"`` hyperparameters become numbers, once validation knows the dataset size.

Rules (documented in docs/hyperparameters.md):
- n_epochs: 3, raised so that small datasets see at least 100 examples in total
  (``min(25, 100 // n)`` when ``3 * n < 100``) and lowered for large ones
  (``max(1, 25000 // n)`` when ``3 * n > 25000``) — OpenAI's published heuristic.
- batch_size: about 0.2% of the examples, at least 1 and at most 256
  (``clamp(ceil(n / 500), 1, 256)``), never more than the number of examples.
- learning_rate_multiplier: 2.0 for batch sizes up to 4, 1.0 up to 32, 0.5 above; the
  trainer multiplies its method's base learning rate by it.
- beta (DPO): 0.1.
Explicit values are kept as given.

hone's extensions default at creation: LoRA (rank 16, alpha 32, dropout 0.05, all linear
layers) with a checkpoint at the end of every epoch.
"""

from __future__ import annotations

import math
from typing import Any

TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 3, 100, 25000
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 1, 25


def auto_n_epochs(n: int) -> int:
    if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // max(n, 1))
    if n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
    return TARGET_EPOCHS


def auto_batch_size(n: int) -> int:
    return max(1, min(256, math.ceil(n / 500), n))


def auto_learning_rate_multiplier(batch_size: int) -> float:
    if batch_size <= 4:
        return 2.0
    return 1.0 if batch_size <= 32 else 0.5


EXTENSION_DEFAULTS: dict[str, Any] = {"training_type": "lora", "lora_rank": 16, "lora_alpha": 32,
                                      "lora_dropout": 0.05, "target_modules": "all-linear",
                                      "checkpoint_interval": "epoch"}


def defaults(method: str) -> dict[str, Any]:
    hp: dict[str, Any] = {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto",
                          **EXTENSION_DEFAULTS}
    if method == "dpo":
        hp["beta"] = "auto"
    return hp


def resolve(hp: dict[str, Any], n_examples: int) -> dict[str, Any]:
    out = dict(hp)
    if out.get("n_epochs") == "auto":
        out["n_epochs"] = auto_n_epochs(n_examples)
    if out.get("batch_size") == "auto":
        out["batch_size"] = auto_batch_size(n_examples)
    if out.get("learning_rate_multiplier") == "auto":
        out["learning_rate_multiplier"] = auto_learning_rate_multiplier(int(out["batch_size"]))
    if out.get("beta") == "auto":
        out["beta"] = 0.1
    return out
