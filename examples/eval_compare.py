"""Did the fine-tune get better? Grade the base model and the fine-tuned model on held-out
examples with the Evals API, through the official `openai` SDK (what `hone eval compare` does).

    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=... python examples/eval_compare.py ftjob-... [file-...]

The held-out file (the job's validation file unless one is given) is chat fine-tuning JSONL: each
line's last assistant message is the reference answer, the messages before it the prompt.
"""

from __future__ import annotations

import json
import sys
import time

from openai import OpenAI

client = OpenAI()  # OPENAI_BASE_URL and OPENAI_API_KEY
job = client.fine_tuning.jobs.retrieve(sys.argv[1])
file_id = sys.argv[2] if len(sys.argv) > 2 else job.validation_file
assert job.status == "succeeded" and job.fine_tuned_model and file_id, "needs a succeeded job and a held-out file"
base_model, tuned_model = job.model, job.fine_tuned_model

items = []
for line in client.files.content(file_id).text.splitlines():
    if line.strip():
        *prompt, answer = json.loads(line)["messages"]
        items.append({"item": {"input": prompt, "reference": answer["content"]}})

ev = client.evals.create(
    name=f"compare {job.id}",
    data_source_config={
        "type": "custom",
        "item_schema": {
            "type": "object",
            "properties": {"input": {"type": "array"}, "reference": {"type": "string"}},
            "required": ["input", "reference"],
        },
        "include_sample_schema": True,
    },
    testing_criteria=[
        {
            "type": "string_check",
            "name": "exact match",
            "input": "{{sample.output_text}}",
            "reference": "{{item.reference}}",
            "operation": "eq",
        }
    ],
)
runs = {
    model: client.evals.runs.create(
        ev.id,
        name=model,
        data_source={
            "type": "completions",
            "model": model,
            "input_messages": {"type": "item_reference", "item_reference": "item.input"},
            "sampling_params": {"temperature": 0, "max_completion_tokens": 64},
            "source": {"type": "file_content", "content": items},
        },
    )
    for model in (base_model, tuned_model)
}
outcomes = {}
for model, created in runs.items():
    while (run := client.evals.runs.retrieve(created.id, eval_id=ev.id)).status not in (
        "completed",
        "failed",
        "canceled",
    ):
        time.sleep(1)
    counts = run.result_counts
    print(f"{model}: {counts.passed}/{counts.total} passed ({run.id}, {run.status})")
    outputs = client.evals.runs.output_items.list(run.id, eval_id=ev.id)
    outcomes[model] = {o.datasource_item_id: o.status == "pass" for o in outputs}  # the SDK pages on

base, tuned = outcomes[base_model], outcomes[tuned_model]
for i, entry in enumerate(items):
    if base.get(i) != tuned.get(i):
        change = "fail -> pass" if tuned.get(i) else "pass -> fail"
        print(f"  #{i} {change}: {entry['item']['input'][-1]['content']!r}")
