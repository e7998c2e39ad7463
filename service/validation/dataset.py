"""The job-data validator: streams a JSONL file once and checks it for a fine-tuning job.

Lines come from ``lines.iter_lines`` (one partial line in memory at most), are parsed with
orjson and checked by the method's rules (``chat`` or ``preference``). Checked examples wait
in a buffer of at most ``batch_size`` conversations so the token counter sees batches; the
buffer is counted and dropped whenever it fills. The first problem by line order wins: before
a line's own problem is raised, the buffered earlier lines are counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from contract.methods import METHODS, DataFormat

from .chat import Labeled, check_chat_example, json_type
from .errors import DataValidationError, Problem
from .lines import LineTooLong, iter_lines
from .preference import check_preference_example
from .tokens import Conversation, RenderError, TokenCounter

Param = Literal["training_file", "validation_file"]

# The per-line rules of each data format (contract.methods names each method's format).
RULES: dict[DataFormat, Callable[[dict[str, Any]], list[Labeled]]] = {
    DataFormat.CHAT: check_chat_example,
    DataFormat.PREFERENCE: check_preference_example,
}
FILE_CODES = {"training_file": "invalid_training_file", "validation_file": "invalid_validation_file"}


@dataclass(frozen=True)
class DatasetStats:
    n_examples: int
    n_tokens: int  # all conversations counted (DPO: prompt+preferred and prompt+non_preferred)
    max_example_tokens: int


def line_error(param: str, line: int, problem: Problem) -> DataValidationError:
    where = f", {problem.where}" if problem.where else ""
    return DataValidationError(
        FILE_CODES[param], f"Invalid file format. Line {line}{where}: {problem.detail}", param, line=line
    )


def parse_line(raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(f"line cannot be parsed as JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Problem(f"line must be a JSON object, got {json_type(obj)}")
    return obj


class TokenTally:
    """Buffers checked conversations, counts them in batches and enforces the token limit."""

    def __init__(self, counter: TokenCounter, max_tokens: int, param: str, batch_size: int) -> None:
        self.counter, self.max_tokens, self.param = counter, max_tokens, param
        self.batch_size = max(1, batch_size)
        self.pending: list[tuple[int, str, Conversation]] = []
        self.n_tokens = 0
        self.max_example_tokens = 0

    def add(self, line: int, labeled: list[Labeled]) -> None:
        self.pending.extend((line, label, conv) for label, conv in labeled)
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        self._count(batch)

    def _count(self, batch: list[tuple[int, str, Conversation]]) -> None:
        if not batch:
            return
        try:
            counts = self.counter.count([conv for _, _, conv in batch])
        except RenderError as exc:
            self._count(batch[: exc.index])  # earlier lines' problems come first
            raise line_error(
                self.param,
                batch[exc.index][0],
                Problem(f"the base model's chat template cannot render this example: {exc.reason}"),
            ) from None
        for (line, label, _), n in zip(batch, counts, strict=True):
            if n > self.max_tokens:
                raise line_error(
                    self.param,
                    line,
                    Problem(f"{label} has {n} tokens, more than the limit of {self.max_tokens} tokens"),
                )
            self.n_tokens += n
            self.max_example_tokens = max(self.max_example_tokens, n)


def validate_dataset(
    chunks: Iterable[bytes],
    *,
    method: str,
    param: Param,
    counter: TokenCounter,
    max_tokens: int,
    min_examples: int,
    max_line_bytes: int = 64 * 2**20,
    batch_size: int = 256,
) -> DatasetStats:
    """Check a training/validation file; raise ``DataValidationError`` on the first problem."""
    check_example = RULES[METHODS.get(method).data_format]
    tally = TokenTally(counter, max_tokens, param, batch_size)
    n_examples, line, problem = 0, 0, None
    try:
        for line, raw in iter_lines(chunks, max_line_bytes):
            labeled = check_example(parse_line(raw))
            n_examples += 1
            tally.add(line, labeled)
    except LineTooLong as exc:
        line, problem = exc.lineno, Problem(f"line is longer than the limit of {exc.limit} bytes")
    except Problem as exc:
        problem = exc
    tally.flush()
    if problem is not None:
        raise line_error(param, line, problem)
    needed = max(min_examples, 1)
    if n_examples < needed:
        kind = "Training" if param == "training_file" else "Validation"
        raise DataValidationError(
            "invalid_n_examples",
            f"{kind} file has {n_examples} example(s), but must have at least {needed} examples",
            param,
        )
    return DatasetStats(n_examples, tally.n_tokens, tally.max_example_tokens)
