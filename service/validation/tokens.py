"""Token counting for the validator: the ``TokenCounter`` protocol and its HF implementation.

A counter gets a batch of conversations (already checked and normalised by the rules: every
``content`` is a plain string) and returns the length in tokens of each one's chat-template
rendering without a generation prompt. ``HFTokenCounter`` loads a tokenizer with
``transformers.AutoTokenizer`` on first use (tokenizer only; no torch), renders each
conversation with its chat template and tokenizes the whole batch in one call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, Required, TypedDict


class Conversation(TypedDict, total=False):
    messages: Required[list[dict[str, Any]]]
    tools: list[dict[str, Any]]


class TokenCounter(Protocol):
    def count(self, examples: Sequence[Conversation]) -> list[int]:
        """Tokens of each conversation's chat-template rendering, one int per input."""
        ...


class RenderError(ValueError):
    """The chat template refused conversation ``index`` of a batch (e.g. role order)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"conversation {index}: {reason}")
        self.index = index
        self.reason = reason


class TokenizerUnavailable(RuntimeError):
    """The base model's tokenizer cannot be loaded from its catalog source: a deployment problem
    (the models volume is not mounted, the path is wrong), not the data's."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _permanent(source: str) -> str | None:
    """Why loading from ``source`` can never work, or None when the failure may pass."""
    path = Path(source)
    if path.is_absolute() or source.startswith("."):
        if not path.exists():
            return "no such directory (is the models volume mounted?)"
        if path.is_dir() and not any((path / name).exists() for name in TOKENIZER_FILES):
            return "the directory holds no tokenizer files"
        return None
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True", "YES", "yes"):
        return "a hub id, and the hub is offline here"
    return None


class HFTokenCounter:
    """Counts with the tokenizer + chat template in ``source`` (a local HF model directory)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    # The service has no torch by design; transformers' advice about it is noise.
                    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
                    from transformers import AutoTokenizer  # heavy import: only when needed

                    try:
                        tokenizer = AutoTokenizer.from_pretrained(self.source)
                    except Exception as exc:
                        reason = _permanent(self.source)
                        if reason is None:
                            raise  # transient (a storage hiccup, a hub 5xx): validation is tried again
                        raise TokenizerUnavailable(self.source, reason) from exc
                    if not tokenizer.chat_template:
                        raise TokenizerUnavailable(self.source, "the tokenizer has no chat_template")
                    self._tokenizer = tokenizer
        return self._tokenizer

    def count(self, examples: Sequence[Conversation]) -> list[int]:
        tokenizer = self._load()
        texts: list[str] = []
        for index, example in enumerate(examples):
            try:
                texts.append(
                    tokenizer.apply_chat_template(
                        example["messages"], tools=example.get("tools") or None, tokenize=False
                    )
                )
            except Exception as exc:  # template code runs on user data: any failure is the data's
                raise RenderError(index, str(exc) or type(exc).__name__) from exc
        if not texts:
            return []
        encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
        return [len(ids) for ids in encoded["input_ids"]]
