"""The control plane's own process, as an operator runs it (``hone serve``): it validates a job
and runs it to the end through a trainer subprocess without ever loading torch, which
transformers otherwise imports whenever it is installed (the API held 579 MB at rest)."""

from __future__ import annotations

from pathlib import Path

from tests.harness.jobs import upload, wait_status
from tests.harness.process import ServerProcess, proc_status
from tests.integration import tuning

MB = 1_000_000


def test_the_api_process_never_loads_torch(hone_process: ServerProcess) -> None:
    client = hone_process.client()
    job = client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=upload(client, tuning.memorisation_rows()),
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
    )
    job = wait_status(client, job.id, timeout=300)
    assert job.status == "succeeded", job.error  # validated here (tokenizer, chat template), trained elsewhere
    maps = Path(f"/proc/{hone_process.pid}/maps").read_text()
    assert "libtorch" not in maps and "/torch/" not in maps
    rss = proc_status(hone_process.pid)["VmRSS"]
    print(f"[api process] RSS after validating and running a job: {rss / MB:.0f} MB")
    assert rss < 300 * MB
