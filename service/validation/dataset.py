"""The job-data validator: streams a JSONL file once and checks it for a fine-tuning job.

Lines come from ``lines.iter_lines`` (one partial line in memory at most), are parsed with
orjson and checked by the method's rules (``chat`` or ``preference``). Checked examples wait
in a buffer of at most ``batch_size`` conversations so the token counter sees batches; the
buffer is counted and dropped whenever it fills. Problems are reported by line order: before
the scan stops at a line's own problem, the buffered earlier lines are counted.

``scan_dataset`` is the one scan: it collects the first ``max_problems`` problems by line order
and stops there. The job validator (``validate_dataset``) asks for one and raises it; the
dataset check (``service.jobs.dataset_check``) asks for a few and shows them all.
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
        FILE_CODES[param],
        f"Invalid file format. Line {line}{where}: {problem.detail}",
        param,
        line=line,
        where=problem.where,
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
    """Buffers checked conversations, counts them in batches and records every conversation
    over the token limit (or that the chat template cannot render) as a problem."""

    def __init__(self, counter: TokenCounter, max_tokens: int, param: str, batch_size: int) -> None:
        self.counter, self.max_tokens, self.param = counter, max_tokens, param
        self.batch_size = max(1, batch_size)
        self.pending: list[tuple[int, str, Conversation]] = []
        self.problems: list[DataValidationError] = []
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
        while batch:
            try:
                counts = self.counter.count([conv for _, _, conv in batch])
            except RenderError as exc:
                self._count(batch[: exc.index])  # earlier lines' problems come first
                reason = f"the base model's chat template cannot render this example: {exc.reason}"
                self.problems.append(line_error(self.param, batch[exc.index][0], Problem(reason)))
                batch = batch[exc.index + 1 :]
                continue
            for (line, label, _), n in zip(batch, counts, strict=True):
                if n > self.max_tokens:
                    detail = f"{label} has {n} tokens, more than the limit of {self.max_tokens} tokens"
                    self.problems.append(line_error(self.param, line, Problem(detail)))
                    continue
                self.n_tokens += n
                self.max_example_tokens = max(self.max_example_tokens, n)
            return


@dataclass(frozen=True)
class DatasetScan:
    """What one scan found: the counts over the lines it read, and its first problems by line
    order (a file-level problem, too few examples, last). ``stopped`` when it held
    ``max_problems`` and read no further: there may be more, and the counts are partial."""

    stats: DatasetStats
    problems: list[DataValidationError]
    stopped: bool


def scan_dataset(
    chunks: Iterable[bytes],
    *,
    method: str,
    param: Param,
    counter: TokenCounter,
    max_tokens: int,
    min_examples: int,
    max_line_bytes: int = 64 * 2**20,
    batch_size: int = 256,
    max_problems: int = 1,
) -> DatasetScan:
    """Check a training/validation file, collecting its first ``max_problems`` problems."""
    check_example = RULES[METHODS.get(method).data_format]
    tally = TokenTally(counter, max_tokens, param, batch_size)
    limit = max(1, max_problems)
    found: list[DataValidationError] = []  # the lines' own problems, in line order
    n_examples, stopped = 0, False
    lines = iter_lines(chunks, max_line_bytes)
    while len(found) + len(tally.problems) < limit:
        try:
            item = next(lines, None)
            if item is None:
                break
            line, raw = item
            labeled = check_example(parse_line(raw))
        except LineTooLong as exc:  # the splitter cannot go on past an over-long line
            found.append(line_error(param, exc.lineno, Problem(f"line is longer than the limit of {exc.limit} bytes")))
            stopped = True
            break
        except Problem as exc:
            found.append(line_error(param, line, exc))
            continue
        n_examples += 1
        tally.add(line, labeled)
    else:
        stopped = True
    tally.flush()
    problems = sorted(found + tally.problems, key=lambda e: e.line or 0)[:limit]  # stable: a line's own order kept
    needed = max(min_examples, 1)
    if not stopped and len(problems) < limit and n_examples < needed:
        kind = "Training" if param == "training_file" else "Validation"
        problems.append(
            DataValidationError(
                "invalid_n_examples",
                f"{kind} file has {n_examples} example(s), but must have at least {needed} examples",
                param,
            )
        )
    stats = DatasetStats(n_examples, tally.n_tokens, tally.max_example_tokens)
    return DatasetScan(stats, problems, stopped)


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
    scan = scan_dataset(
        chunks,
        method=method,
        param=param,
        counter=counter,
        max_tokens=max_tokens,
        min_examples=min_examples,
        max_line_bytes=max_line_bytes,
        batch_size=batch_size,
    )
    if scan.problems:
        raise scan.problems[0]
    return scan.stats
