"""``scan_dataset``, the one scan behind the job validator and the dataset check: it keeps the
first problems by line order (token problems of buffered lines before a later line's own),
stops at its limit, and with a limit of one finds exactly the problem the job validator raises."""

from __future__ import annotations

from typing import Any

import pytest

from service.validation import DataValidationError, validate_dataset
from service.validation.dataset import scan_dataset
from tests.unit.test_validation import WordCountFake, assistant, jsonl, sft, user

LONG = sft(user("word " * 50), assistant())  # 50+ "tokens" with the fake counter


def scan(data: bytes, **kw: Any) -> Any:
    kw = {"max_tokens": 20, "min_examples": 1, "batch_size": 4, "max_problems": 10, **kw}
    return scan_dataset([data], method="supervised", param="training_file", counter=WordCountFake(), **kw)


def test_problems_come_in_line_order_with_token_problems_of_buffered_lines() -> None:
    data = jsonl(sft(), LONG, sft(), b"{not json", sft(), {"messages": []}, LONG, sft())
    result = scan(data)
    assert [p.line for p in result.problems] == [2, 4, 6, 7]
    assert "more than the limit of 20 tokens" in result.problems[0].message
    assert not result.stopped and result.stats.n_examples == 6  # parsed and checked; LONG counted as lines


def test_the_scan_stops_at_its_limit() -> None:
    data = jsonl(*([{"messages": []}] * 8), sft())
    result = scan(data, max_problems=3)
    assert [p.line for p in result.problems] == [1, 2, 3] and result.stopped


def test_too_few_examples_comes_last_and_only_when_the_whole_file_was_read() -> None:
    result = scan(jsonl(sft(), {"messages": []}), min_examples=5)
    assert [(p.line, p.code) for p in result.problems] == [(2, "invalid_training_file"), (None, "invalid_n_examples")]
    assert scan(jsonl({"messages": []}, {"messages": []}), min_examples=5, max_problems=2).problems[-1].line == 2


@pytest.mark.parametrize(
    "lines",
    [
        [sft(), LONG, b"{x", sft()],  # the buffered line's token problem before the later parse error
        [sft(), b"{x", LONG],
        [LONG, LONG],
        [sft(user("a"), user("b"))],
    ],
)
def test_the_first_problem_is_the_job_validators(lines: list[Any]) -> None:
    data = jsonl(*lines)
    with pytest.raises(DataValidationError) as info:
        validate_dataset(
            [data],
            method="supervised",
            param="training_file",
            counter=WordCountFake(),
            max_tokens=20,
            min_examples=1,
            batch_size=4,
        )
    first = scan(data).problems[0]
    assert (first.line, first.code, first.message) == (info.value.line, info.value.code, info.value.message)
