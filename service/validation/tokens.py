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
import time
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
HUB_RETRY_S = 120.0  # how long a hub id that fails to load is retried before the job fails


def _is_local(source: str) -> bool:
    return Path(source).is_absolute() or source.startswith(".")


def _why_local(source: str) -> str | None:
    """What is wrong with a local model directory, when it can be told without loading it."""
    path = Path(source)
    try:
        if not path.exists():
            return "no such directory (is the models volume mounted?)"
        if not path.is_dir():
            return "not a directory"
        if not any((path / name).exists() for name in TOKENIZER_FILES):
            return "the directory holds no tokenizer files"
    except OSError as e:  # e.g. a directory this process may not read
        return f"it cannot be read ({e.strerror or e})"
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class HFTokenCounter:
    """Counts with the tokenizer + chat template in ``source`` (a local HF model directory).

    A tokenizer that does not load fails the job (``TokenizerUnavailable``, naming the source)
    and is never retried forever: from a local directory at once, whatever the error (the
    catalog or the models volume is wrong, or the files are unreadable or corrupt); from a hub
    id at once when the hub is offline, else after ``retry_for_s`` of failing (a hub outage
    may pass; an air-gapped cluster's never does)."""

    def __init__(self, source: str, *, retry_for_s: float = HUB_RETRY_S) -> None:
        self.source = source
        self.retry_for_s = retry_for_s
        self._tokenizer: Any = None
        self._failing_since: float | None = None
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
                        unavailable = self._unavailable(exc)
                        if unavailable is None:
                            raise  # a hub failure that may pass: validation is tried again
                        raise unavailable from exc
                    if not tokenizer.chat_template:
                        raise TokenizerUnavailable(self.source, "the tokenizer has no chat_template")
                    self._tokenizer, self._failing_since = tokenizer, None
        return self._tokenizer

    def _unavailable(self, exc: Exception) -> TokenizerUnavailable | None:
        """Why the failed load fails the job, or None for a hub failure that may still pass."""
        if _is_local(self.source):
            return TokenizerUnavailable(self.source, _why_local(self.source) or _first_line(exc))
        if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True", "YES", "yes"):
            return TokenizerUnavailable(self.source, "a hub id, and the hub is offline here")
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since >= self.retry_for_s:
            return TokenizerUnavailable(
                self.source, f"{_first_line(exc)} (still failing after {self.retry_for_s:.0f} s)"
            )
        return None

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


class TokenCounters:
    """One ``HFTokenCounter`` per model source for the whole process, so the job validator and
    the dataset check load each tokenizer once between them."""

    def __init__(self) -> None:
        self._counters: dict[str, HFTokenCounter] = {}
        self._lock = threading.Lock()

    def get(self, source: str) -> HFTokenCounter:
        with self._lock:
            if source not in self._counters:
                self._counters[source] = HFTokenCounter(source)
            return self._counters[source]
