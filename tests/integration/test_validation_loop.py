"""The validation loop under faults: a long validation keeps its lease (a second replica never
validates the same job), a replica that died mid-validation loses its claim within one short
lease, and a base model whose tokenizer does not load fails the job naming the path instead of
retrying forever."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import openai

from service.app import build_context
from service.catalog.catalog import BaseModelEntry, Catalog
from service.config import Settings
from service.jobs import lifecycle
from service.scheduling.validate_jobs import JobValidator
from service.validation.tokens import Conversation
from tests.contract.helpers import chat_line, upload, wait_status
from tests.harness.server import fresh_database_url, start_server
from tests.harness.waiting import wait_until


class SlowCounter:
    """A FAKE token counter (unit-level stand-in for the tokenizer): one token per message,
    after a delay per batch, so a validation outlasts several leases."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def count(self, examples: Sequence[Conversation]) -> list[int]:
        time.sleep(self.delay_s)
        return [len(e["messages"]) for e in examples]

    def get(self, source: str) -> SlowCounter:  # as TokenCounters: the same counter for every model
        return self


def test_a_long_validation_keeps_its_lease_and_a_dead_ones_lapses(tmp_path: Path, catalog: Catalog) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=fresh_database_url(tmp_path),
        launcher="none",
        validation_lease_s=6.0,  # renewed every 2 s: a stall under CI load of up to 4 s still keeps it
        validation_batch_size=4,
    )
    ctx = build_context(settings, None, catalog)
    server = start_server(tmp_path, catalog, database_url=settings.resolved_database_url, run_loops=False)
    try:
        client = openai.OpenAI(base_url=server.v1, api_key=server.new_key("acme"), max_retries=0)
        job = client.fine_tuning.jobs.create(
            model="hone-tiny", training_file=upload(client, [chat_line(i) for i in range(12)])
        )
        first, second = (
            JobValidator(ctx.db, ctx.store, ctx.catalog, settings, SlowCounter(3.0)),  # type: ignore[arg-type]  # 3 batches: ~9 s, 1.5 leases
            JobValidator(ctx.db, ctx.store, ctx.catalog, settings, SlowCounter(0.0)),  # type: ignore[arg-type]
        )
        worker = threading.Thread(target=first.run_once)
        worker.start()

        def claimed_by_first() -> bool:
            with ctx.db.session() as s:
                row = lifecycle.job_by_id(s, job.id)
                return row is not None and row.lease_owner == first.owner

        wait_until(claimed_by_first, "the slow validator's claim", 30)  # then the second one may try
        claimed_by_second = 0
        while worker.is_alive():
            claimed_by_second += second.run_once()
            time.sleep(0.2)
        worker.join()
        assert claimed_by_second == 0  # the renewed lease held for the whole validation
        assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"

        # A replica that dies mid-validation: its claim lapses after one lease, then another takes the job.
        dead_lease_s = 3.0
        again = client.fine_tuning.jobs.create(model="hone-tiny", training_file=job.training_file)
        with ctx.db.session() as s:
            assert lifecycle.claim_validation(s, again.id, "validator-dead", dead_lease_s)
        assert second.run_once() == 0
        time.sleep(dead_lease_s + 0.1)
        assert second.run_once() == 1
        assert client.fine_tuning.jobs.retrieve(again.id).status == "queued"
    finally:
        server.stop()
        ctx.db.dispose()


def test_a_base_model_whose_tokenizer_does_not_load_fails_the_job(tmp_path: Path, catalog: Catalog) -> None:
    ghost = Catalog([*catalog, BaseModelEntry(name="ghost", source="/models/not-mounted/ghost")])
    server = start_server(tmp_path, ghost)
    try:
        client = openai.OpenAI(base_url=server.v1, api_key=server.new_key("acme"), max_retries=0)
        job = client.fine_tuning.jobs.create(
            model="ghost", training_file=upload(client, [chat_line(i) for i in range(12)])
        )
        job = wait_status(client, job.id, {"failed", "queued"}, timeout=30)
        assert job.status == "failed" and job.error is not None
        assert job.error.code == "model_not_available" and job.error.param == "model"
        assert "/models/not-mounted/ghost" in job.error.message
    finally:
        server.stop()


def test_a_catalog_whose_models_cannot_load_fails_jobs_naming_the_path(tmp_path: Path, catalog: Catalog) -> None:
    """The deployment's catalog file (HONE_CATALOG_PATH) points at a path the API pod does not
    have, and at a directory whose tokenizer is corrupt (was: an OSError retried forever, the job
    stuck in validating_files). Both jobs fail with the OpenAI job error naming the path."""
    corrupt = tmp_path / "models" / "corrupt"
    corrupt.mkdir(parents=True)
    (corrupt / "tokenizer.json").write_text("{ not json")
    (corrupt / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast"}')
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(
        f"models:\n  - {{name: missing, source: /models/not-mounted/llama}}\n  - {{name: corrupt, source: {corrupt}}}\n"
    )
    server = start_server(tmp_path / "hone", Catalog.from_yaml(catalog_file), catalog_path=catalog_file)
    try:
        client = openai.OpenAI(base_url=server.v1, api_key=server.new_key("acme"), max_retries=0)
        training_file = upload(client, [chat_line(i) for i in range(12)])
        for model, path in (("missing", "/models/not-mounted/llama"), ("corrupt", str(corrupt))):
            job = client.fine_tuning.jobs.create(model=model, training_file=training_file)
            job = wait_status(client, job.id, {"failed", "queued"}, timeout=60)
            assert job.status == "failed" and job.error is not None, model
            assert (job.error.code, job.error.param) == ("model_not_available", "model")
            assert path in job.error.message and "misconfigured" in job.error.message
    finally:
        server.stop()
