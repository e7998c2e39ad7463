"""``hone eval compare``: the step every fine-tuning guide ends with, in one command. For a
finished fine-tuning job, the held-out examples (the job's validation file, or ``--file``) are
asked of the base model and of the fine-tuned one, both answers graded against the example's
own answer, and the pass rates printed side by side with the items whose outcome changed.

It is a client of the documented API, over HTTP like any other (the same calls
examples/eval_compare.py makes with the ``openai`` SDK): one eval whose items are
``{input: the messages before the last assistant message, reference: that message}``, and two
``completions`` runs that send ``item.input`` to each model at temperature 0. Nothing here
reads hone's database, so it works as well against a remote hone (or OpenAI itself)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import httpx

from service.protocol.evals import FINISHED_RUN_STATUSES

ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "input": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
                "required": ["role", "content"],
            },
        },
        "reference": {"type": "string"},
    },
    "required": ["input", "reference"],
}


class CompareError(Exception):
    """Why the comparison cannot be made (or finished): one line for the user."""


@dataclass(frozen=True)
class Options:
    job_id: str
    file_id: str | None = None
    grader: str = "string_check"  # or "fuzzy_match"
    pass_threshold: float = 0.9  # fuzzy_match only
    max_tokens: int = 64
    timeout_s: float = 3600.0
    poll_s: float = 1.0


class Api:
    """The few endpoints the comparison calls; any non-2xx answer is a ``CompareError`` quoting
    the server's own message."""

    def __init__(self, base_url: str, api_key: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(120, connect=10),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise CompareError(f"cannot reach {self.http.base_url}: {e}") from None
        if response.status_code >= 300:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise CompareError(f"{method} /{path}: HTTP {response.status_code}: {message}")
        return response

    def json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        doc = self.call(method, path, **kw).json()
        return doc if isinstance(doc, dict) else {}

    def pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            page = self.json("GET", path, params={**params, "limit": 100, **({"after": after} if after else {})})
            yield from page.get("data") or []
            if not page.get("has_more") or not page.get("data"):
                return
            after = page["data"][-1]["id"]


def held_out_items(text: str, file_id: str) -> list[dict[str, Any]]:
    """The eval's items from a chat fine-tuning JSONL file: per line, the conversation up to its
    last assistant message (``input``) and that message's text (``reference``)."""
    items = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (ValueError, KeyError, TypeError):
            raise CompareError(f"{file_id} line {n}: not a JSON object with 'messages'") from None
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
            raise CompareError(f"{file_id} line {n}: 'messages' is not a non-empty list of messages")
        last = messages[-1]
        if last.get("role") != "assistant" or not isinstance(last.get("content"), str):
            raise CompareError(f"{file_id} line {n}: the last message is not an assistant message with text content")
        prompt = [{"role": m.get("role"), "content": m.get("content")} for m in messages[:-1] if isinstance(m, dict)]
        if not prompt or not all(isinstance(m["content"], str) for m in prompt):
            raise CompareError(f"{file_id} line {n}: the messages before the answer must have text content")
        items.append({"input": prompt, "reference": last["content"]})
    if not items:
        raise CompareError(f"{file_id} holds no examples")
    return items


def testing_criterion(grader: str, pass_threshold: float) -> dict[str, Any]:
    if grader == "string_check":
        return {
            "type": "string_check",
            "name": "exact match",
            "input": "{{sample.output_text}}",
            "reference": "{{item.reference}}",
            "operation": "eq",
        }
    if grader == "fuzzy_match":
        return {
            "type": "text_similarity",
            "name": "fuzzy match",
            "input": "{{sample.output_text}}",
            "reference": "{{item.reference}}",
            "evaluation_metric": "fuzzy_match",
            "pass_threshold": pass_threshold,
        }
    raise CompareError(f"unknown grader {grader!r}: use string_check or fuzzy_match")


def completions_source(model: str, items: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    return {
        "type": "completions",
        "model": model,
        "input_messages": {"type": "item_reference", "item_reference": "item.input"},
        "sampling_params": {"temperature": 0, "max_completion_tokens": max_tokens, "seed": 42},
        "source": {"type": "file_content", "content": [{"item": item} for item in items]},
    }


@dataclass
class Side:
    label: str
    model: str
    run: dict[str, Any]
    items: dict[int, dict[str, Any]]  # output items by datasource_item_id

    def counts(self) -> dict[str, int]:
        c = self.run.get("result_counts") or {}
        return {k: int(c.get(k) or 0) for k in ("total", "passed", "failed", "errored")}


def compare(api: Api, opts: Options, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Create the eval and the two runs, wait for both, print the comparison; returns it as a
    dict (what ``--json`` prints)."""
    job = api.json("GET", f"fine_tuning/jobs/{opts.job_id}")
    if job.get("status") != "succeeded" or not job.get("fine_tuned_model"):
        raise CompareError(f"job {opts.job_id} is {job.get('status')}: only a succeeded job has a model to compare")
    file_id = opts.file_id or job.get("validation_file")
    if not file_id:
        raise CompareError(f"job {opts.job_id} has no validation file: pass a held-out chat JSONL file with --file")
    items = held_out_items(api.call("GET", f"files/{file_id}/content").text, file_id)
    base, tuned = str(job["model"]), str(job["fine_tuned_model"])
    ev = api.json(
        "POST",
        "evals",
        json={
            "name": f"compare {opts.job_id}",
            "metadata": {"fine_tuning_job": opts.job_id, "file": file_id},
            "data_source_config": {"type": "custom", "item_schema": ITEM_SCHEMA, "include_sample_schema": True},
            "testing_criteria": [testing_criterion(opts.grader, opts.pass_threshold)],
        },
    )
    sides = []
    for label, model in (("base", base), ("fine-tuned", tuned)):
        run = api.json(
            "POST",
            f"evals/{ev['id']}/runs",
            json={"name": f"{label}: {model}", "data_source": completions_source(model, items, opts.max_tokens)},
        )
        sides.append(Side(label, model, run, {}))
    deadline = time.monotonic() + opts.timeout_s
    for side in sides:
        side.run = wait_run(api, ev["id"], side.run["id"], deadline, opts.poll_s)
        if side.run["status"] != "completed":
            error = (side.run.get("error") or {}).get("message") or "no error message"
            raise CompareError(f"the {side.label} run {side.run['id']} ended {side.run['status']}: {error}")
        side.items = {
            int(o["datasource_item_id"]): o for o in api.pages(f"evals/{ev['id']}/runs/{side.run['id']}/output_items")
        }
    result = summarise(ev, items, sides[0], sides[1])
    print_summary(result, out)
    return result


def wait_run(api: Api, eval_id: str, run_id: str, deadline: float, poll_s: float) -> dict[str, Any]:
    while True:
        run = api.json("GET", f"evals/{eval_id}/runs/{run_id}")
        if run.get("status") in FINISHED_RUN_STATUSES:
            return run
        if time.monotonic() > deadline:
            raise CompareError(f"run {run_id} is still {run.get('status')} after the timeout; it keeps running")
        time.sleep(poll_s)


def _answer(item: dict[str, Any] | None) -> str:
    outputs = ((item or {}).get("sample") or {}).get("output") or []
    return " ".join(str(outputs[0].get("content") or "").split()) if outputs else ""


def summarise(ev: dict[str, Any], items: list[dict[str, Any]], base: Side, tuned: Side) -> dict[str, Any]:
    changed = []
    for i, item in enumerate(items):
        b, t = base.items.get(i), tuned.items.get(i)
        b_pass, t_pass = (b or {}).get("status") == "pass", (t or {}).get("status") == "pass"
        if b_pass != t_pass:
            changed.append(
                {
                    "datasource_item_id": i,
                    "change": "fail -> pass" if t_pass else "pass -> fail",
                    "input": item["input"][-1]["content"],
                    "reference": item["reference"],
                    "base_output": _answer(b),
                    "fine_tuned_output": _answer(t),
                }
            )

    def side(s: Side) -> dict[str, Any]:
        counts = s.counts()
        rate = counts["passed"] / counts["total"] if counts["total"] else 0.0
        return {"model": s.model, "run_id": s.run["id"], **counts, "pass_rate": round(rate, 4)}

    return {"eval_id": ev["id"], "items": len(items), "base": side(base), "fine_tuned": side(tuned), "changed": changed}


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_summary(result: dict[str, Any], out: TextIO) -> None:
    b, t = result["base"], result["fine_tuned"]
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("model", lambda s: str(s["model"])),
        ("run", lambda s: str(s["run_id"])),
        ("pass rate", lambda s: f"{s['pass_rate']:.1%} ({s['passed']}/{s['total']})"),
        ("failed", lambda s: str(s["failed"])),
        ("errored", lambda s: str(s["errored"])),
    ]
    width = max(len(b["model"]), len(b["run_id"]), 12) + 2
    print(f"eval {result['eval_id']}: {result['items']} held-out items", file=out)
    print(f"{'':<10}{'base':<{width}}fine-tuned", file=out)
    for name, cell in rows:
        print(f"{name:<10}{cell(b):<{width}}{cell(t)}", file=out)
    n, ups = len(result["changed"]), sum(1 for c in result["changed"] if c["change"] == "fail -> pass")
    print(f"\n{n} items changed ({ups} fail -> pass, {n - ups} pass -> fail)", file=out)
    for c in result["changed"]:
        print(f"  #{c['datasource_item_id']} {c['change']}: {_clip(c['input'])}", file=out)
        print(f"      reference:  {_clip(c['reference'])}", file=out)
        print(f"      base:       {_clip(c['base_output'])}", file=out)
        print(f"      fine-tuned: {_clip(c['fine_tuned_output'])}", file=out)


def main(
    opts: Options, base_url: str, api_key: str, *, as_json: bool = False, transport: httpx.BaseTransport | None = None
) -> int:
    """The CLI's entry: 0 when both runs completed and the comparison was printed; 2 with one
    line on stderr otherwise."""
    api = Api(base_url, api_key, transport=transport)
    try:
        result = compare(api, opts, out=sys.stderr if as_json else sys.stdout)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        api.close()
    if as_json:
        print(json.dumps(result, indent=2))
    return 0
