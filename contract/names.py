"""Fine-tuned model names: ``ft:{base}:{project}:{suffix}:{shortid}`` (``::`` when there is no
suffix) and ``...:{shortid}:ckpt-step-{n}`` for checkpoints. The one grammar the control plane
mints and the inference resolver accepts; nothing else is ever served as an adapter."""

from __future__ import annotations

import re
from dataclasses import dataclass

BASE_NAME = r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}"
PROJECT_NAME = r"[a-z0-9][a-z0-9\-_]{0,62}"
SUFFIX = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
SHORT_ID_LENGTH = 8
FINE_TUNED_MODEL_NAME = re.compile(
    rf"^ft:(?P<base>{BASE_NAME}):(?P<project>{PROJECT_NAME}):"
    rf"(?P<suffix>[A-Za-z0-9._\-]{{0,64}}):(?P<short>[A-Za-z0-9]{{{SHORT_ID_LENGTH}}})"
    r"(?::ckpt-step-(?P<step>\d{1,10}))?$"
)


@dataclass(frozen=True)
class ModelName:
    base: str
    project: str
    suffix: str | None
    short_id: str
    step: int | None = None  # a checkpoint's step; None for a final model

    def __str__(self) -> str:
        name = f"ft:{self.base}:{self.project}:{self.suffix or ''}:{self.short_id}"
        return name if self.step is None else f"{name}:ckpt-step-{self.step}"

    @classmethod
    def parse(cls, name: str) -> ModelName | None:
        m = FINE_TUNED_MODEL_NAME.fullmatch(name)
        if m is None:
            return None
        step = m["step"]
        return cls(m["base"], m["project"], m["suffix"] or None, m["short"], int(step) if step else None)


def is_fine_tuned_name(name: str) -> bool:
    return FINE_TUNED_MODEL_NAME.fullmatch(name) is not None
