"""Helpers for tests that train for real: datasets, waiting, and greedy generation from a
base model with an adapter read back from the blob store (transformers + peft, CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import torch

PAIRS = [
    ("What is the secret word?", "The secret word is pineapple."),
    ("Who painted the blue door?", "Marta painted the blue door."),
]


def memorisation_rows(copies: int = 5) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in PAIRS
    ] * copies


def metrics(client: openai.OpenAI, job_id: str) -> list[dict[str, Any]]:
    events = client.fine_tuning.jobs.list_events(job_id, limit=1000)
    return sorted((e.data for e in events if e.type == "metrics"), key=lambda d: d["step"])  # type: ignore[no-any-return]


def adapter_dir(blobs: Path, job_id: str) -> Path:
    return blobs / "jobs" / job_id / "final"


def load(base: Path, adapter: Path | None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return tok, model.eval()


def answer(tok: Any, model: Any, question: str, max_new_tokens: int = 16) -> str:
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(
            **prompt,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=tok.pad_token_id,
        )
    return tok.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def sequence_logp(tok: Any, model: Any, messages: list[dict[str, Any]], answer_text: str) -> float:
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = prompt + answer_text + "<|im_end|>\n"
    ids = tok(full, add_special_tokens=False, return_tensors="pt")["input_ids"]
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logps = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
    return float(logps[n_prompt - 1 :].sum())
