"""The control-plane demo: everything through the official `openai` SDK, as a user would.

Run by scripts/demo.sh, which starts `hone serve` and passes HONE_DEMO_BASE_URL and
HONE_DEMO_API_KEY.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

from openai import OpenAI

DATA = Path(__file__).parent / "data" / "capitals.jsonl"


def wait(client: OpenAI, job_id: str, until: set[str]):  # type: ignore[no-untyped-def]
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in until:
        time.sleep(0.3)
    return job


def main() -> None:
    client = OpenAI(base_url=os.environ["HONE_DEMO_BASE_URL"], api_key=os.environ["HONE_DEMO_API_KEY"])

    print("== upload", DATA.name)
    f = client.files.create(file=DATA.open("rb"), purpose="fine-tune")
    f = client.files.wait_for_processing(f.id)
    print(f"   {f.id}  {f.bytes} bytes  status={f.status}")

    print("== create a fine-tuning job on hone-tiny (LoRA, trained on this machine's CPU)")
    job = client.fine_tuning.jobs.create(
        model="hone-tiny", training_file=f.id, suffix="capitals", metadata={"demo": "true"}, seed=42,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 20, "batch_size": 2, "learning_rate_multiplier": 4}}})
    print(f"   {job.id}  status={job.status}")
    seen: set[str] = set()
    while True:
        job = client.fine_tuning.jobs.retrieve(job.id)
        for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=50).data):
            if event.id not in seen:
                seen.add(event.id)
                if event.type != "metrics" or event.data["step"] % 20 == 0:
                    print(f"   [{job.status}] {event.message}")
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    print(f"   status={job.status}  fine_tuned_model={job.fine_tuned_model}  trained_tokens={job.trained_tokens}")
    print(f"   hyperparameters={job.hyperparameters.model_dump()}")
    for ckpt in client.fine_tuning.jobs.checkpoints.list(job.id):
        print(f"   checkpoint step {ckpt.step_number}: {ckpt.fine_tuned_model_checkpoint}  "
              f"train_loss={ckpt.metrics.train_loss:.3f}")
    if job.result_files:
        csv = client.files.content(job.result_files[0]).text.splitlines()
        print(f"   result file {job.result_files[0]}: {len(csv) - 1} rows, last: {csv[-1]}")

    print("== a file with a bad example fails validation with a line number")
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    rows[6]["messages"][2]["weight"] = 2
    bad = client.files.create(file=("bad.jsonl", io.BytesIO("\n".join(map(json.dumps, rows)).encode())),
                              purpose="fine-tune")
    failed = wait(client, client.fine_tuning.jobs.create(model="hone-tiny", training_file=bad.id).id,
                  {"failed", "queued"})
    print(f"   status={failed.status}  error.code={failed.error.code}  error.param={failed.error.param}")
    print(f"   error.message={failed.error.message}")

    print("== models")
    for m in client.models.list():
        print(f"   {m.id}  owned_by={m.owned_by}")


if __name__ == "__main__":
    main()
