"""``text_similarity``: a similarity metric between the rendered ``input`` (the text graded)
and ``reference``, each from a well-kept library, as a score in [0, 1]:

- fuzzy_match: rapidfuzz ``fuzz.ratio`` / 100 (normalized Indel similarity of the strings);
- bleu: sacrebleu ``sentence_bleu`` (13a tokenizer, exp smoothing, effective order) / 100;
- gleu: nltk ``sentence_gleu`` (1- to 4-grams) over Treebank tokens;
- meteor: nltk ``meteor_score`` with exact and Porter-stem matching only: the WordNet corpus
  its synonym stage reads is a separate download hone does not ship, so no synonyms match;
- rouge_1 .. rouge_5, rouge_l: rouge-score's F-measure (its tokenizer: lowercase, alphanumeric);
- cosine: the cosine similarity of the two texts' embeddings by the operator's embedding
  model (``HONE_EVALS__EMBEDDING_MODEL``: a catalog base model served with ``runner: pooling``),
  called through hone's gateway in the caller's project like a model grader's judge, with
  numpy; negative similarities (opposed vectors) score 0, keeping every metric in [0, 1].
  Without an embedding model it is refused at creation with what to set; a model that cannot
  answer errors the item (``model_grader_server_error``).

passed: score >= ``pass_threshold`` (required in an eval's testing_criteria; in
``graders/run`` without one, passed means a perfect score of 1)."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from functools import cache
from typing import Any, cast

import numpy as np
import sacrebleu
from nltk.tokenize import TreebankWordTokenizer  # type: ignore[import-untyped]
from nltk.translate.gleu_score import sentence_gleu  # type: ignore[import-untyped]
from nltk.translate.meteor_score import meteor_score  # type: ignore[import-untyped]
from pydantic import BaseModel
from rapidfuzz import fuzz
from rouge_score import rouge_scorer  # type: ignore[import-untyped]

from service.errors import InvalidRequest, shown
from service.evals.graders.base import (
    GradeError,
    GradeResult,
    GraderOptions,
    Judge,
    ModelCallError,
    Namespaces,
    SchemaHints,
)
from service.evals.graders.template import check_references, render
from service.protocol.graders import TextSimilarityGrader

_tokenize = TreebankWordTokenizer().tokenize


class _NoSynonyms:
    """What nltk's METEOR asks of WordNet (``synsets(word)``), answering none: METEOR's
    synonym stage then matches nothing and exact + stem matching decide the score."""

    def synsets(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


@cache
def _rouge(kind: str) -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer([kind])


def _fuzzy(text: str, ref: str) -> float:
    return float(fuzz.ratio(text, ref)) / 100


def _bleu(text: str, ref: str) -> float:
    return float(sacrebleu.sentence_bleu(text, [ref]).score) / 100


def _gleu(text: str, ref: str) -> float:
    return float(sentence_gleu([_tokenize(ref)], _tokenize(text)))


def _meteor(text: str, ref: str) -> float:
    return float(meteor_score([_tokenize(ref)], _tokenize(text), wordnet=cast(Any, _NoSynonyms())))


def _rouge_metric(kind: str) -> Callable[[str, str], float]:
    def score(text: str, ref: str) -> float:
        return float(_rouge(kind).score(target=ref, prediction=text)[kind].fmeasure)

    return score


METRICS: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": _fuzzy,
    "bleu": _bleu,
    "gleu": _gleu,
    "meteor": _meteor,
    **{f"rouge_{n}": _rouge_metric(f"rouge{n}") for n in range(1, 6)},
    "rouge_l": _rouge_metric("rougeL"),
}


def similarity(metric: str, text: str, reference: str) -> float:
    """``metric`` of ``text`` against ``reference``, clipped to [0, 1] (sacrebleu's 100.0 for
    identical text comes back as 100.00000000000004)."""
    return min(1.0, max(0.0, METRICS[metric](text, reference)))


def cosine(a: list[float], b: list[float]) -> float:
    """The cosine similarity of two embeddings, clipped to [0, 1]; 0 when either is all zeros."""
    u, v = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = float(np.linalg.norm(u) * np.linalg.norm(v))
    if norms == 0.0:
        return 0.0
    return min(1.0, max(0.0, float(np.dot(u, v)) / norms))


class TextSimilarity:
    type = "text_similarity"
    wire: builtins.type[BaseModel] = TextSimilarityGrader
    threshold_required = True  # in an eval's testing_criteria, as OpenAI requires

    def check(self, spec: TextSimilarityGrader, hints: SchemaHints, options: GraderOptions, param: str) -> None:
        if spec.evaluation_metric == "cosine" and options.embedding_model is None:
            raise InvalidRequest(
                f"Invalid '{param}.evaluation_metric': the cosine metric needs an embedding model; set "
                f"HONE_EVALS__EMBEDDING_MODEL. Use one of: {', '.join(METRICS)}.",
                param=f"{param}.evaluation_metric",
            )
        check_references(spec.input, hints, f"{param}.input")
        check_references(spec.reference, hints, f"{param}.reference")

    async def grade(
        self, spec: TextSimilarityGrader, ns: Namespaces, judge: Judge | None, options: GraderOptions
    ) -> GradeResult:
        text, reference = render(spec.input, ns), render(spec.reference, ns)
        threshold = 1.0 if spec.pass_threshold is None else spec.pass_threshold
        if spec.evaluation_metric == "cosine":
            return await self._cosine(spec, text, reference, judge, options, threshold)
        # off the event loop: on long texts a metric takes milliseconds, and the loop serves the API
        score = await asyncio.to_thread(similarity, spec.evaluation_metric, text, reference)
        return GradeResult(name=spec.name, type=self.type, score=score, passed=score >= threshold)

    async def _cosine(
        self,
        spec: TextSimilarityGrader,
        text: str,
        reference: str,
        judge: Judge | None,
        options: GraderOptions,
        threshold: float,
    ) -> GradeResult:
        model = options.embedding_model
        if judge is None or model is None:
            return self._errored(spec, "No embedding model is available here.")
        try:
            got = await judge.embed(model, [text, reference])
        except ModelCallError as e:
            return self._errored(
                spec, f"The embedding model {shown(model, 64)!r} could not answer (HTTP {e.status}): {e.message}"
            )
        score = cosine(got.vectors[0], got.vectors[1])
        return GradeResult(name=spec.name, type=self.type, score=score, passed=score >= threshold, usage=[got.usage])

    def _errored(self, spec: TextSimilarityGrader, message: str) -> GradeResult:
        return GradeResult(spec.name, self.type, 0.0, False, error=GradeError("model_grader_server_error", message))
