"""The Evals settings, nested in ``Settings.evals`` (``HONE_EVALS__RUN_CONCURRENCY=16``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PythonGraderSettings(BaseModel):
    """The ``python`` grader runs caller-supplied code: refused unless an operator enables it;
    then each grade runs in a subprocess with no network, a read-only filesystem, and these
    limits."""

    enabled: bool = Field(default=False, description="allow the python grader (it runs user code)")
    cpu_seconds: int = Field(default=5, ge=1, description="CPU time one grade may use (RLIMIT_CPU)")
    memory_mb: int = Field(default=512, ge=32, description="address space one grade may use (RLIMIT_AS)")
    timeout_s: float = Field(default=30.0, gt=0, description="wall-clock limit of one grade")


class EvalSettings(BaseModel):
    run_concurrency: int = Field(
        default=8, ge=1, le=256, description="items of one eval run sampled and graded at once"
    )
    max_running_runs: int = Field(default=4, ge=1, description="eval runs one control plane executes at once")
    run_lease_s: float = Field(
        default=30.0, gt=0, description="a runner's hold on a run, renewed every third of it; a dead runner's lapses"
    )
    max_items: int = Field(default=100_000, ge=1, description="largest data source of one run (items)")
    embedding_model: str | None = Field(
        default=None,
        description="model the text_similarity grader's cosine metric embeds with; unset: cosine is refused",
    )
    python_grader: PythonGraderSettings = Field(default_factory=PythonGraderSettings)
