"""string_check and text_similarity against values computed by hand (each expected number is
derived in the test from the metric's definition, not by calling the grader twice)."""

from __future__ import annotations

import asyncio
import math
from typing import cast

import pytest

from service.errors import InvalidRequest
from service.evals.graders import registry
from service.evals.graders.base import (
    Embeddings,
    GradeResult,
    GraderOptions,
    Judge,
    ModelCallError,
    Namespaces,
    SchemaHints,
    Usage,
)
from service.evals.graders.text_similarity import similarity
from service.protocol.graders import StringCheckGrader, TextSimilarityGrader

OPTIONS = GraderOptions()


def grade(spec: object, item: dict[str, object] | None = None, output: str = "") -> GradeResult:
    ns = Namespaces(item=item or {}, sample={"output_text": output, "output_json": None})
    return asyncio.run(registry.grade(spec, ns, None, OPTIONS))


@pytest.mark.parametrize(
    ("operation", "text", "ref", "expected"),
    [
        ("eq", "Paris", "Paris", 1.0),
        ("eq", "Paris", "paris", 0.0),
        ("ne", "Paris", "paris", 1.0),
        ("ne", "Paris", "Paris", 0.0),
        ("like", "The capital is Paris.", "Paris", 1.0),
        ("like", "The capital is PARIS.", "Paris", 0.0),
        ("ilike", "The capital is PARIS.", "paris", 1.0),
        ("ilike", "The capital is Lyon.", "paris", 0.0),
    ],
)
def test_string_check_truth_table(operation: str, text: str, ref: str, expected: float) -> None:
    spec = StringCheckGrader(
        name="s", type="string_check", input="{{sample.output_text}}", reference="{{item.ref}}", operation=operation
    )
    r = grade(spec, {"ref": ref}, text)
    assert (r.score, r.passed, r.error) == (expected, expected == 1.0, None)


def test_fuzzy_match_is_normalized_indel_similarity() -> None:
    # "hello wrld" is "hello world" less one character: 2 * 10 matching / (11 + 10) characters
    assert similarity("fuzzy_match", "hello wrld", "hello world") == pytest.approx(20 / 21)
    assert similarity("fuzzy_match", "abc", "abc") == 1.0
    assert similarity("fuzzy_match", "abc", "xyz") == 0.0


def test_bleu_on_the_cat_on_the_mat() -> None:
    # hypothesis "the cat is on the mat", reference "the cat sat on the mat", same length (BP = 1):
    # 1-grams 5/6, 2-grams 3/5 (the cat, on the, the mat), 3-grams 1/4 (on the mat), 4-grams 0/3,
    # which sacrebleu's exp smoothing counts as 1 / (2 * 3); BLEU is the geometric mean.
    expected = math.prod([5 / 6, 3 / 5, 1 / 4, 1 / 6]) ** 0.25
    assert similarity("bleu", "the cat is on the mat", "the cat sat on the mat") == pytest.approx(expected, abs=1e-9)
    assert similarity("bleu", "the cat sat on the mat", "the cat sat on the mat") == 1.0


def test_gleu_is_min_of_ngram_precision_and_recall() -> None:
    # "the cat sat" has 3 + 2 + 1 = 6 n-grams (n = 1..4), all in the reference, which has
    # 6 + 5 + 4 + 3 = 18: precision 1, recall 6/18.
    assert similarity("gleu", "the cat sat", "the cat sat on the mat") == pytest.approx(1 / 3)


def test_meteor_matches_exact_words_and_stems_but_no_synonyms() -> None:
    # identical 6 words in 1 chunk: F = 1, penalty 0.5 * (1/6)^3
    assert similarity("meteor", "the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1 - 0.5 / 216)
    # "cats" matches "cat" by its Porter stem: 3 matches in 1 chunk, penalty 0.5 * (1/3)^3
    assert similarity("meteor", "the cats sat", "the cat sat") == pytest.approx(1 - 0.5 / 27)
    # "feline" is WordNet's synonym of "cat", which hone has no corpus for: 2 of 3 words match in
    # 2 chunks, F = 2/3, penalty 0.5 * (2/2)^3: the documented deviation from full METEOR
    assert similarity("meteor", "the feline sat", "the cat sat") == pytest.approx(2 / 3 * 0.5)


@pytest.mark.parametrize(
    ("metric", "precision", "recall"),
    [
        ("rouge_1", 3 / 3, 3 / 6),  # the, cat, sat of the reference's 6 words
        ("rouge_2", 2 / 2, 2 / 5),  # "the cat", "cat sat" of its 5 bigrams
        ("rouge_3", 1 / 1, 1 / 4),
        ("rouge_l", 3 / 3, 3 / 6),  # longest common subsequence: 3 words
    ],
)
def test_rouge_is_the_f_measure(metric: str, precision: float, recall: float) -> None:
    f = 2 * precision * recall / (precision + recall)
    assert similarity(metric, "the cat sat", "the cat sat on the mat") == pytest.approx(f)
    assert similarity("rouge_4", "the cat sat", "the cat sat on the mat") == 0.0  # no 4-gram in 3 words


def test_text_similarity_passes_at_the_threshold() -> None:
    spec = TextSimilarityGrader(
        name="t",
        type="text_similarity",
        input="{{sample.output_text}}",
        reference="{{item.ref}}",
        evaluation_metric="rouge_1",
        pass_threshold=0.6,
    )
    r = grade(spec, {"ref": "the cat sat on the mat"}, "the cat sat")
    assert r.score == pytest.approx(2 / 3) and r.passed
    r = grade(spec.model_copy(update={"pass_threshold": 0.7}), {"ref": "the cat sat on the mat"}, "the cat sat")
    assert not r.passed
    unset = grade(spec.model_copy(update={"pass_threshold": None}), {"ref": "a b"}, "a b")
    assert unset.score == 1.0 and unset.passed  # without a threshold only a perfect score passes


def test_missing_item_field_is_an_errored_result() -> None:
    spec = StringCheckGrader(name="s", type="string_check", input="{{item.nope}}", reference="x", operation="eq")
    r = grade(spec, {"ref": "x"})
    assert r.error is not None and r.error.flag == "invalid_variable_error" and "item.nope" in r.error.message
    assert (r.score, r.passed) == (0.0, False)


def test_cosine_is_refused_without_an_embedding_model_and_accepted_with_one() -> None:
    spec = TextSimilarityGrader(name="t", type="text_similarity", input="a", reference="b", evaluation_metric="cosine")
    with pytest.raises(InvalidRequest) as e:
        registry.check(spec, SchemaHints(None, True), OPTIONS, "grader")
    assert e.value.param == "grader.evaluation_metric" and "HONE_EVALS__EMBEDDING_MODEL" in e.value.message
    registry.check(spec, SchemaHints(None, True), GraderOptions(embedding_model="e5"), "grader")


class FakeEmbedder:
    """A FAKE embedding model: a fixed vector per text (or raises ``error``), recording calls."""

    def __init__(self, vectors: dict[str, list[float]], error: ModelCallError | None = None) -> None:
        self.vectors, self.error = vectors, error
        self.calls: list[tuple[str, list[str]]] = []

    async def embed(self, model: str, texts: list[str]) -> Embeddings:
        self.calls.append((model, texts))
        if self.error is not None:
            raise self.error
        return Embeddings([self.vectors[t] for t in texts], Usage(model, prompt_tokens=3 * len(texts)))


def grade_cosine(embedder: FakeEmbedder, threshold: float | None = 0.5) -> GradeResult:
    spec = TextSimilarityGrader(
        name="t",
        type="text_similarity",
        input="{{sample.output_text}}",
        reference="{{item.ref}}",
        evaluation_metric="cosine",
        pass_threshold=threshold,
    )
    ns = Namespaces(item={"ref": "ref"}, sample={"output_text": "out", "output_json": None})
    judge = cast(Judge, embedder)
    return asyncio.run(registry.grade(spec, ns, judge, GraderOptions(embedding_model="e5")))


def test_cosine_scores_the_embeddings_angle() -> None:
    embedder = FakeEmbedder({"out": [1.0, 1.0, 0.0], "ref": [1.0, 0.0, 0.0]})
    r = grade_cosine(embedder)
    assert r.score == pytest.approx(1 / math.sqrt(2)) and r.passed and r.error is None
    assert embedder.calls == [("e5", ["out", "ref"])]  # the rendered input and reference, one call
    assert r.usage == [Usage("e5", prompt_tokens=6)]
    opposed = grade_cosine(FakeEmbedder({"out": [-1.0, 0.0], "ref": [1.0, 0.0]}))
    assert (opposed.score, opposed.passed) == (0.0, False)  # clipped to [0, 1] like every metric


def test_cosine_with_a_model_that_cannot_answer_is_an_errored_result() -> None:
    r = grade_cosine(FakeEmbedder({}, error=ModelCallError("Model e5 does not exist.", 404)))
    assert r.error is not None and r.error.flag == "model_grader_server_error"
    assert "'e5' could not answer (HTTP 404): Model e5 does not exist." in r.error.message
    assert (r.score, r.passed) == (0.0, False)


def test_pass_threshold_is_required_in_testing_criteria() -> None:
    spec = TextSimilarityGrader(name="t", type="text_similarity", input="a", reference="b", evaluation_metric="bleu")
    registry.check(spec, SchemaHints(None, True), OPTIONS, "grader")  # graders/run: optional
    with pytest.raises(InvalidRequest) as e:
        registry.check(spec, SchemaHints(None, True), OPTIONS, "testing_criteria[2]", require_pass_threshold=True)
    assert e.value.param == "testing_criteria[2].pass_threshold"
    assert e.value.message == "Missing required parameter: 'testing_criteria[2].pass_threshold'."
