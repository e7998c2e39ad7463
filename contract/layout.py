"""Where every blob lives. The one place that spells a key; writers and readers in every
process call these functions instead of formatting paths.

```
files/{file_id}                                   an uploaded or generated file
uploads/{upload_id}/{part_id}                     a part of an Upload until it completes or is purged
jobs/{job_id}/checkpoints/step-{n}/               a checkpoint: PEFT files or weights, resume state,
                                                  manifest.json written last
jobs/{job_id}/final/                              the final adapter (or weights), manifest.json last
jobs/{job_id}/step_metrics.csv                    the result file registered on the job
adapters/{sha256(model name)}.json                the adapter index entry the inference resolver reads
```
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MANIFEST = "manifest.json"
RESULT_CSV = "step_metrics.csv"
# What a servable LoRA adapter directory holds (PEFT's names, safetensors only).
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILES = (ADAPTER_WEIGHTS, ADAPTER_CONFIG)
_STEP = re.compile(r"/checkpoints/step-(\d+)/?$")


def file_key(file_id: str) -> str:
    return f"files/{file_id}"


def upload_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}"


def upload_part_key(upload_id: str, part_id: str) -> str:
    return f"{upload_prefix(upload_id)}/{part_id}"


def adapter_index_key(model_name: str) -> str:
    """Where the control plane records which blob prefix serves a fine-tuned model name; the
    inference resolver reads only this (names contain ':', so the key is their sha256)."""
    return f"adapters/{hashlib.sha256(model_name.encode()).hexdigest()}.json"


@dataclass(frozen=True)
class JobLayout:
    """The keys under one job's output prefix (``JobSpec.output_uri`` points at ``prefix``)."""

    prefix: str

    @classmethod
    def for_job(cls, job_id: str) -> JobLayout:
        return cls(f"jobs/{job_id}")

    def checkpoint(self, step: int) -> str:
        return f"{self.prefix}/checkpoints/step-{step}"

    @property
    def final(self) -> str:
        return f"{self.prefix}/final"

    @property
    def result_csv(self) -> str:
        return f"{self.prefix}/{RESULT_CSV}"

    def owns(self, key: str) -> bool:
        return key.startswith(self.prefix + "/")


def manifest_key(prefix: str) -> str:
    return f"{prefix}/{MANIFEST}"


def checkpoint_step(key_or_uri: str) -> int:
    """The step number of a checkpoint prefix (``.../checkpoints/step-40`` -> 40)."""
    match = _STEP.search(key_or_uri)
    if match is None:
        raise ValueError(f"{key_or_uri!r} is not a checkpoint prefix")
    return int(match.group(1))
