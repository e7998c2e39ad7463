"""Fine-tuned model names (DESIGN.md §3): ``ft:{base}:{project}:{suffix}:{shortid}``, with
``::`` when there is no suffix, and ``...:{shortid}:ckpt-step-{n}`` for checkpoints."""

from __future__ import annotations

import re

from service import ids
from trainer.spec import FINE_TUNED_MODEL_NAME

SUFFIX = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
FT_NAME = FINE_TUNED_MODEL_NAME


def final_name(base: str, project: str, suffix: str | None) -> str:
    return f"ft:{base}:{project}:{suffix or ''}:{ids.model_short_id()}"


def checkpoint_name(base: str, project: str, suffix: str | None, step: int) -> str:
    return f"ft:{base}:{project}:{suffix or ''}:{ids.model_short_id()}:ckpt-step-{step}"


def is_fine_tuned_name(name: str) -> bool:
    return FT_NAME.fullmatch(name) is not None
