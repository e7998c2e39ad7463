"""moto's S3 server over real HTTP on a loopback port (no MinIO server can be installed here):
real boto3 clients, real requests, moto's in-memory S3 behind them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from tests.harness.ports import free_port


@contextmanager
def moto_s3(bucket: str = "hone-test") -> Iterator[str]:
    """Yields the endpoint URL with ``bucket`` created; sets the env boto3 and hone read."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "HONE_S3_ENDPOINT_URL")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        HONE_S3_ENDPOINT_URL=endpoint,
    )
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
