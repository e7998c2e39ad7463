"""The API with its blob store on S3 (moto's S3 server over real HTTP): uploads go to S3,
downloads stream back byte-identical, validation reads from S3, deletion removes the object.
(Multipart uploads and a 1 GB round trip: tests/unit/test_blobstore_backends.py.)"""

from __future__ import annotations

import hashlib
import os

import boto3
import openai
import pytest

from tests.contract.helpers import chat_line, jsonl, wait_status
from tests.harness.server import start_server
from tests.s3server import moto_s3


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory, catalog):  # type: ignore[no-untyped-def]
    with moto_s3("hone-api") as endpoint:
        srv = start_server(tmp_path_factory.mktemp("s3api"), catalog, storage_url="s3://hone-api/prod")
        yield srv, endpoint
        srv.stop()


def test_files_and_validation_on_s3(s3_server) -> None:  # type: ignore[no-untyped-def]
    srv, endpoint = s3_server
    client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key=srv.new_key("acme"), max_retries=0)
    big = jsonl([chat_line(i) for i in range(5_000)])
    f = client.files.create(file=("train.jsonl", big), purpose="fine-tune")
    assert hashlib.sha256(client.files.content(f.id).read()).hexdigest() == hashlib.sha256(big).hexdigest()
    s3 = boto3.client("s3", endpoint_url=endpoint)
    head = s3.head_object(Bucket="hone-api", Key=f"prod/files/{f.id}")
    assert head["ContentLength"] == len(big) == f.bytes
    job = wait_status(
        client,
        client.fine_tuning.jobs.create(model="hone-tiny", training_file=f.id).id,
        {"queued", "failed"},
        timeout=300,
    )
    assert job.status == "queued", job.error
    client.files.delete(f.id)
    assert "Contents" not in s3.list_objects_v2(Bucket="hone-api", Prefix=f"prod/files/{f.id}")
    assert os.environ.get("HONE_S3_ENDPOINT_URL") == endpoint
