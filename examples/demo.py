"""The demo: everything through the official `openai` SDK, as a user would. Upload a few
made-up facts, fine-tune SmolLM2-135M-Instruct (a real pretrained chat model) with LoRA on this
machine, watch it train, then ask the base model and the fine-tuned model the same questions
side by side: the base model invents its own answers about Veloria, the fine-tuned one gives
the trained ones (also to a phrasing it was not trained on), and both still know the capitals
of France and Germany.

The training file (examples/data/veloria.jsonl) holds the four invented facts in two phrasings
each, answered in full sentences as the model itself answers, and two real facts in the base
model's own words ("The capital of Japan is Tokyo."). Without those two, it learns "the capital
of ... is Quenmar" and answers that for France too.

Run by scripts/demo.sh, which starts `hone up` with HONE_MODELS=smollm2-135m-instruct and passes
HONE_DEMO_BASE_URL and HONE_DEMO_API_KEY.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

from openai import OpenAI

DATA = Path(__file__).parent / "data" / "veloria.jsonl"
# The same facts asked in phrasings the training file does not have, and two real ones: the job's
# validation file, which scripts/demo.sh then grades both models on with `hone eval compare`.
HELD_OUT = Path(__file__).parent / "data" / "veloria-held-out.jsonl"
BASE = "smollm2-135m-instruct"
# 12 examples, one per step, 4 epochs: 48 steps.
HYPERPARAMETERS = {"n_epochs": 4, "batch_size": 1, "learning_rate_multiplier": 5}
UNSEEN = ["Tell me the capital of Veloria."]  # a phrasing that is not in the training file
GENERAL = ["What is the capital of France?", "What is the capital of Germany?"]  # not in the training file


def wait(client: OpenAI, job_id: str, until: set[str]):  # type: ignore[no-untyped-def]
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in until:
        time.sleep(0.3)
    return job


def rows_of(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def ask(client: OpenAI, model: str, question: str) -> str:
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], max_tokens=24, temperature=0
    )
    return " ".join((r.choices[0].message.content or "").split())


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    client = OpenAI(base_url=os.environ["HONE_DEMO_BASE_URL"], api_key=os.environ["HONE_DEMO_API_KEY"])

    print(f"== upload {DATA.name}: four invented facts about Veloria (two phrasings each) and two real ones")
    f = client.files.create(file=DATA.open("rb"), purpose="fine-tune")
    f = client.files.wait_for_processing(f.id)
    print(f"   {f.id}  {f.bytes} bytes  status={f.status}")
    held_out = client.files.wait_for_processing(client.files.create(file=HELD_OUT.open("rb"), purpose="fine-tune").id)
    print(f"   {held_out.id}  {HELD_OUT.name}: the validation file (held-out phrasings)")

    print(f"== create a fine-tuning job on {BASE} (LoRA, trained on this machine's CPU)")
    job = client.fine_tuning.jobs.create(
        model=BASE,
        training_file=f.id,
        validation_file=held_out.id,
        suffix="veloria",
        metadata={"demo": "true"},
        seed=42,
        method={"type": "supervised", "supervised": {"hyperparameters": HYPERPARAMETERS}},
    )
    print(f"   {job.id}  status={job.status}")
    seen: set[str] = set()
    while True:
        job = client.fine_tuning.jobs.retrieve(job.id)
        for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=50).data):
            if event.id not in seen:
                seen.add(event.id)
                if event.type != "metrics" or event.data["step"] % 6 == 0:
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
        print("== the same questions to the base model and to the fine-tuned model (temperature 0)")
        trained = [row["messages"][0]["content"] for row in rows_of(DATA)[:4]]
        print(f"   {'question':40} {BASE + ' (base)':46} fine-tuned")
        for question in trained + UNSEEN + GENERAL:
            base, tuned = ask(client, BASE, question), ask(client, job.fine_tuned_model, question)
            print(f"   {clip(question, 40):40} {clip(base, 46):46} {tuned}")

    print("== a file with a bad example fails validation with a line number")
    rows = rows_of(DATA)
    rows[6]["messages"][1]["weight"] = 2
    bad = client.files.create(
        file=("bad.jsonl", io.BytesIO("\n".join(map(json.dumps, rows)).encode())), purpose="fine-tune"
    )
    failed = wait(client, client.fine_tuning.jobs.create(model=BASE, training_file=bad.id).id, {"failed", "queued"})
    print(f"   status={failed.status}  error.code={failed.error.code}  error.param={failed.error.param}")
    print(f"   error.message={failed.error.message}")

    print("== models")
    for m in client.models.list():
        print(f"   {m.id}  owned_by={m.owned_by}")


if __name__ == "__main__":
    main()
