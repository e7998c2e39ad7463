"""S3 (or any S3-compatible store: MinIO, Ceph RGW) behind the ``BlobStore`` protocol, via boto3.

URL: ``s3://bucket/optional/prefix``. Credentials and region come from boto3's standard chain
(environment, shared config, instance/pod identity); ``HONE_S3_ENDPOINT_URL`` (or boto3's own
``AWS_ENDPOINT_URL``) points it at a non-AWS endpoint. Writes of more than one part use a
multipart upload, each part sent with its SHA-256 so the store rejects a corrupted part; an
object appears only when the upload completes, and an aborted writer aborts the upload. Reads
stream the body in chunks.

``compose`` (the parts of an OpenAI Upload into one file) is one multipart upload whose parts are
server-side copies of the source objects (UploadPartCopy, one S3 part per source), so the bytes
are read once to be observed but never sent back; S3 needs every part but the last to be at least
5 MiB, so sources smaller than that (a client that sent small parts) are streamed through one
writer instead.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

from contract.blobstore.base import CHUNK, BlobNotFound, UriScheme, check_key, compose_through

PART_SIZE = 16 * 1024 * 1024  # S3: 5 MiB .. 5 GiB per part, 10,000 parts (160 GiB here); memory per upload
# CompleteMultipartUpload of a large object may answer after minutes (AWS documents it; moto's
# server took over a minute for 2 GiB here), more than botocore's default 60 s read timeout.
READ_TIMEOUT_S = 600
MIN_PART, MAX_PART, MAX_PARTS = 5 * 1024 * 1024, 5 * 1024**3, 10_000  # S3's limits on a multipart upload


def _b64sha256(data: bytes | bytearray) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class _S3Writer:
    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        self._c, self._bucket, self._key, self._part_size = client, bucket, key, part_size
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False

    def write(self, data: bytes) -> None:
        rest = memoryview(data)  # the buffer fills up to one part and is sent as it is, never copied
        while rest:
            room = self._part_size - len(self._buf)
            self._buf += rest[:room]
            rest = rest[room:]
            if len(self._buf) == self._part_size:
                part, self._buf = self._buf, bytearray()
                self._send_part(part)

    def _send_part(self, part: bytes | bytearray) -> None:
        if self._upload_id is None:
            self._upload_id = self._c.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ChecksumAlgorithm="SHA256"
            )["UploadId"]
        number = len(self._parts) + 1
        checksum = _b64sha256(part)
        resp = self._c.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
        )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum})

    def commit(self) -> None:
        if self._upload_id is None:
            data = bytes(self._buf)
            self._c.put_object(
                Bucket=self._bucket,
                Key=self._key,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64sha256(data),
            )
        else:
            if self._buf:
                self._send_part(bytes(self._buf))
            self._c.complete_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self._buf = bytearray()
        self._done = True

    def abort(self) -> None:
        if not self._done:
            if self._upload_id is not None:
                self._c.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
            self._buf = bytearray()
            self._done = True

    def __enter__(self) -> _S3Writer:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if et is not None or not self._done:
            self.abort()


class S3BlobStore(UriScheme):
    def __init__(self, url: str, *, client: Any = None, part_size: int = PART_SIZE) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket[/prefix] URL: {url}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.url = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.part_size = part_size
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=os.environ.get("HONE_S3_ENDPOINT_URL") or None,
                config=Config(read_timeout=READ_TIMEOUT_S),
            )
        self._c = client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def writer(self, key: str) -> _S3Writer:
        return _S3Writer(self._c, self.bucket, self._key(key), self.part_size)

    def read(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            body = self._c.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as e:
            if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise BlobNotFound(key) from e
            raise
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self._c.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as e:
            if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise BlobNotFound(key)
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def delete(self, key: str) -> None:
        self._c.delete_object(Bucket=self.bucket, Key=self._key(key))

    def sweep_incomplete(self, older_than_s: float) -> int:
        """Abort multipart uploads under this store's prefix started more than ``older_than_s``
        ago and never completed (the writer's process died); their parts cost storage."""
        cutoff = time.time() - older_than_s
        paginator = self._c.get_paginator("list_multipart_uploads")
        prefix = f"{self.prefix}/" if self.prefix else ""
        aborted = 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() <= cutoff:
                    self._c.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    aborted += 1
        return aborted

    def delete_prefix(self, prefix: str) -> None:
        full = self._key(prefix.rstrip("/")) + "/"
        paginator = self._c.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                self._c.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def compose(self, key: str, sources: Sequence[str], observe: Callable[[bytes], None]) -> None:
        heads = [self._head(source) for source in sources]
        missing = [source for source, head in zip(sources, heads, strict=True) if head is None]
        if missing:
            raise BlobNotFound(missing[0])
        sizes = [int(head["ContentLength"]) for head in heads if head is not None]
        copyable = 0 < len(sources) <= MAX_PARTS and all(MIN_PART <= n <= MAX_PART for n in sizes[:-1])
        if not copyable:
            compose_through(self, key, sources, observe)
            return
        target = self._key(key)
        upload_id = self._c.create_multipart_upload(Bucket=self.bucket, Key=target)["UploadId"]
        try:
            parts = []
            for number, (source, head) in enumerate(zip(sources, heads, strict=True), start=1):
                for chunk in self.read(source):
                    observe(chunk)
                assert head is not None
                copied = self._c.upload_part_copy(
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": self._key(source)},
                    CopySourceIfMatch=head["ETag"],  # the bytes observed are the bytes copied
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            self._c.complete_multipart_upload(
                Bucket=self.bucket, Key=target, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._c.abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id)
            raise
