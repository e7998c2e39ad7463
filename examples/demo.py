"""The demo: everything through the official `openai` SDK, as a user would. Upload, fine-tune
with LoRA on this machine, watch it train, then ask the base model and the fine-tuned model the
same questions, side by side.

Run by scripts/demo.sh, which starts `hone up` and passes HONE_DEMO_BASE_URL and
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


def rows_of(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def ask(client: OpenAI, model: str, messages: list) -> str:  # type: ignore[type-arg]
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0)
    return (r.choices[0].message.content or "").strip()


def main() -> None:
    client = OpenAI(base_url=os.environ["HONE_DEMO_BASE_URL"], api_key=os.environ["HONE_DEMO_API_KEY"])

    print("== upload", DATA.name)
    f = client.files.create(file=DATA.open("rb"), purpose="fine-tune")
    f = client.files.wait_for_processing(f.id)
    print(f"   {f.id}  {f.bytes} bytes  status={f.status}")

    print("== create a fine-tuning job on hone-tiny (LoRA, trained on this machine's CPU)")
    job = client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=f.id,
        suffix="capitals",
        metadata={"demo": "true"},
        seed=42,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 30, "batch_size": 2, "learning_rate_multiplier": 4}},
        },
    )
    print(f"   {job.id}  status={job.status}")
    seen: set[str] = set()
    while True:
        job = client.fine_tuning.jobs.retrieve(job.id)
        for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=50).data):
            if event.id not in seen:
                seen.add(event.id)
                if event.type != "metrics" or event.data["step"] % 30 == 0:
                    print(f"   [{job.status}] {event.message}")
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    print(f"   status={job.status}  fine_tuned_model={job.fine_tuned_model}  trained_tokens={job.trained_tokens}")
    print(f"   hyperparameters={job.hyperparameters.model_dump()}")
    for ckpt in client.fine_tuning.jobs.checkpoints.list(job.id):
        print(
            f"   checkpoint step {ckpt.step_number}: {ckpt.fine_tuned_model_checkpoint}  "
            f"train_loss={ckpt.metrics.train_loss:.3f}"
        )
    if job.result_files:
        csv = client.files.content(job.result_files[0]).text.splitlines()
        print(f"   result file {job.result_files[0]}: {len(csv) - 1} rows, last: {csv[-1]}")

    if job.status == "succeeded":
        print("== the same questions to the base model and to the fine-tuned model")
        print(f"   {'question':34} {'hone-tiny (base)':28} {'fine-tuned':20}")
        for row in rows_of(DATA)[:6]:
            question = row["messages"][1]["content"]
            base = ask(client, "hone-tiny", row["messages"][:2])
            tuned = ask(client, job.fine_tuned_model, row["messages"][:2])
            print(f"   {question:34} {base[:26]!r:28} {tuned!r}")

    print("== a file with a bad example fails validation with a line number")
    rows = rows_of(DATA)
    rows[6]["messages"][2]["weight"] = 2
    bad = client.files.create(
        file=("bad.jsonl", io.BytesIO("\n".join(map(json.dumps, rows)).encode())), purpose="fine-tune"
    )
    failed = wait(
        client, client.fine_tuning.jobs.create(model="hone-tiny", training_file=bad.id).id, {"failed", "queued"}
    )
    print(f"   status={failed.status}  error.code={failed.error.code}  error.param={failed.error.param}")
    print(f"   error.message={failed.error.message}")

    print("== models")
    for m in client.models.list():
        print(f"   {m.id}  owned_by={m.owned_by}")


if __name__ == "__main__":
    main()
