"""Training data for the bench: chat examples (system prompt, user question, assistant answer)
whose rendered lengths follow a log-normal (median 150 tokens) clipped to 20..1000 (``chat``,
the default), or are all about the same length (``--lengths 1000``: each example's rendered
length is drawn as exactly 1,000 and lands within a few tokens of it), generated from the seed
and rendered with ``ChatRenderer`` (loss on assistant tokens only)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from typing import Any

from service.catalog.tiny import CORPUS_PATH
from trainer.data import ChatRenderer, Example

SYSTEM_PROMPTS = [
    "Be brief.",
    "You are a helpful assistant.",
    "You are a friendly assistant. Answer clearly and check your facts.",
    "You are a support agent for a travel company. Answer the customer's question politely, "
    "give concrete times and places where you can, and say so when you do not know.",
    "You are a careful tutor. Explain your reasoning step by step, use short sentences and "
    "plain words, give one small example, and end with a one-line summary of the answer. "
    "Never invent numbers; if the question is unclear, say what you assumed.",
]
QUESTION_STEMS = [
    "Why?",
    "Can you explain this:",
    "What happened here:",
    "Tell me more about this:",
    "Summarise the following and add some detail:",
    "Is this true?",
]
MAX_LENGTH = 4096  # the renderer's cap; no drawn example comes near it
CHAT = "chat"


def parse_lengths(value: str) -> str:
    """``chat`` (clipped log-normal) or a whole number of tokens (80..4000) every example gets."""
    if value == CHAT:
        return value
    if value.isdigit() and 80 <= int(value) <= 4000:
        return str(int(value))
    raise ValueError(f"--lengths: {value!r} is neither 'chat' nor a token count in 80..4000")


def make_rows(
    tok: Any, n: int, seed: int, min_len: int = 20, max_len: int = 1000, lengths: str = CHAT
) -> list[dict[str, Any]]:
    """``n`` chat rows whose rendered length follows a clipped log-normal (median 150 tokens),
    or is ``lengths`` tokens for every row, a pure function of ``seed``. Answers are runs of
    corpus text cut to the drawn length."""
    rng = random.Random(seed)
    text = CORPUS_PATH.read_text(encoding="utf-8")
    words, lines = text.split(), text.splitlines()
    cost: dict[str, int] = {}

    def tokens(piece: str) -> int:  # byte-level BPE pre-splits on spaces: counts add up per word
        if piece not in cost:
            cost[piece] = len(tok(piece, add_special_tokens=False)["input_ids"])
        return cost[piece]

    rows = []
    for _ in range(n):
        if lengths == CHAT:
            target = min(max_len, max(min_len, round(rng.lognormvariate(math.log(150), 0.9))))
        else:
            target = int(lengths)
        small = target < 80
        system = rng.choice(SYSTEM_PROMPTS[:2] if small else SYSTEM_PROMPTS)
        stem = rng.choice(QUESTION_STEMS[:1] if small else QUESTION_STEMS)
        question = stem if small else f"{stem} {rng.choice(lines)}"
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        prefix = len(tok(prompt, add_special_tokens=False)["input_ids"])
        budget = max(1, target - prefix - 2)  # "<|im_end|>" and "\n" close the turn
        start = rng.randrange(len(words))
        answer: list[str] = []
        used = 0
        while used < budget or not answer:
            w = words[(start + len(answer)) % len(words)]
            used += tokens(w if not answer else " " + w)
            answer.append(w)
        rows.append({"messages": msgs + [{"role": "assistant", "content": " ".join(answer)}]})
    return rows


def make_batches(
    tok: Any, n_batches: int, batch_size: int, seed: int, lengths: str = CHAT
) -> tuple[list[Example], list[list[Example]]]:
    """The rendered examples and the batches they are cut into, in order."""
    renderer = ChatRenderer(tok, MAX_LENGTH)
    examples = [renderer.sft(r) for r in make_rows(tok, n_batches * batch_size, seed, lengths=lengths)]
    return examples, [examples[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]


def length_stats(examples: Sequence[Example]) -> dict[str, Any]:
    lens = sorted(len(ex.input_ids) for ex in examples)
    return {
        "n": len(lens),
        "min": lens[0],
        "median": statistics.median(lens),
        "mean": round(statistics.fmean(lens), 1),
        "p90": lens[int(0.9 * (len(lens) - 1))],
        "max": lens[-1],
        "trainable_fraction": round(sum(ex.n_trainable for ex in examples) / sum(lens), 3),
    }
