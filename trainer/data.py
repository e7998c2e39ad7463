"""Training data: OpenAI chat-format lines rendered with the base tokenizer's chat template,
loss only on assistant tokens, and padding-free packed batches.

Masks come from the template itself: for every trainable assistant message the text of the
conversation up to that message (with the generation prompt) and through it are rendered, and
the characters in between are the assistant's turn. Offsets map those characters to tokens.
This works for any template whose renderings of a conversation's prefixes are prefixes of its
rendering (ChatML, Llama 3, Qwen, Mistral ...); a template that is not is refused clearly.

Packing puts a batch's examples one after another in a single row with ``position_ids``
restarting at 0 for each; transformers turns that into a block-diagonal causal mask (when
there is no attention mask and no cache), so no token attends across examples and no compute
goes to padding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

IGNORE = -100


class BadInput(ValueError):
    """The job's data cannot be trained on; retrying will not help."""


class TemplateError(BadInput):
    pass


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss

    @property
    def n_trainable(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as fh:
        for raw in fh:
            raw = raw.strip()
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if raw:
                try:
                    yield json.loads(raw)
                except json.JSONDecodeError as e:
                    raise BadInput(f"{Path(path).name}: a line is not valid JSON: {e}") from e


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def normalize(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as templates expect them: ``content`` a plain string, no ``weight`` key."""
    return [
        {k: (_text(v) if k == "content" else v) for k, v in m.items() if k != "weight"}
        | {"content": _text(m.get("content"))}
        for m in messages
    ]


class ChatRenderer:
    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tok = tokenizer
        self.max_length = max_length

    def _render(self, messages: list[dict[str, Any]], tools: Any, generation_prompt: bool) -> str:
        return self.tok.apply_chat_template(
            messages, tools=tools or None, tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode(
        self, messages: Sequence[dict[str, Any]], tools: Any = None, trainable: Sequence[bool] | None = None
    ) -> Example:
        """Tokens of the whole conversation; loss on the messages marked trainable (default:
        every assistant message whose ``weight`` is not 0)."""
        if trainable is None:
            trainable = [m["role"] == "assistant" and m.get("weight", 1) != 0 for m in messages]
        msgs = normalize(messages)
        full = self._render(msgs, tools, False)
        spans: list[tuple[int, int]] = []
        for i, train in enumerate(trainable):
            if not train:
                continue
            start = len(self._render(msgs[:i], tools, True))
            end = len(self._render(msgs[: i + 1], tools, False))
            if not full.startswith(self._render(msgs[: i + 1], tools, False)):
                raise TemplateError(
                    "the chat template does not render conversation prefixes as "
                    "prefixes of the whole conversation; cannot locate assistant turns"
                )
            spans.append((start, end))
        enc = self.tok(full, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        labels = [IGNORE] * len(ids)
        j = 0
        for t, (s, e) in enumerate(offsets):
            while j < len(spans) and s >= spans[j][1]:
                j += 1
            if j < len(spans) and s >= spans[j][0] and e > s:
                labels[t] = ids[t]
        ids, labels = ids[: self.max_length], labels[: self.max_length]
        return Example(ids, labels)

    def sft(self, row: dict[str, Any]) -> Example:
        return self.encode(row["messages"], row.get("tools"))

    def dpo(self, row: dict[str, Any]) -> tuple[Example, Example]:
        """(chosen, rejected): the prompt followed by each answer, loss only on the answer."""
        prompt = list(row["input"]["messages"])
        tools = row["input"].get("tools")
        out = []
        for key in (("preferred_output", "preferred_completion"), ("non_preferred_output", "non_preferred_completion")):
            answer = row.get(key[0]) or row.get(key[1])
            if not answer:  # the validator refuses such a row; a spec that skipped it is a bug
                raise ValueError(f"a preference row has no {key[0]}")
            msgs = prompt + list(answer)
            out.append(self.encode(msgs, tools, [False] * len(prompt) + [True] * len(answer)))
        return out[0], out[1]


def pack(examples: Sequence[Example]) -> dict[str, torch.Tensor]:
    """One padding-free row: tokens end to end, positions restarting per example, and the
    first token of each example never a target (it is not predicted from the previous one)."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    seq: list[int] = []
    for k, ex in enumerate(examples):
        ids += ex.input_ids
        labels += [IGNORE] + ex.labels[1:]
        positions += range(len(ex.input_ids))
        seq += [k] * len(ex.input_ids)
    return {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "position_ids": torch.tensor([positions]),
        "sequence_ids": torch.tensor([seq]),
    }


def pad(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """The conventional batch (padded to the longest example), for evaluation baselines."""
    width = max(len(ex.input_ids) for ex in examples)
    ids = [ex.input_ids + [pad_id] * (width - len(ex.input_ids)) for ex in examples]
    labels = [ex.labels + [IGNORE] * (width - len(ex.labels)) for ex in examples]
    mask = [[1] * len(ex.input_ids) + [0] * (width - len(ex.input_ids)) for ex in examples]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch: a pure function of (seed, epoch), so a resumed run
    sees exactly the order the interrupted one would have."""
    g = torch.Generator().manual_seed(seed * 1000003 + epoch)
    return torch.randperm(n, generator=g).tolist()
