"""Writes base models onto the models volume, each complete or absent (run by the Job in
populate.yaml). MODELS is NAME=SOURCE[,NAME=SOURCE...]: SOURCE `builtin` runs
`hone make-model NAME --out DIR`; an `s3://bucket/prefix` copies every object under that prefix
(HONE_S3_ENDPOINT_URL and AWS_CA_BUNDLE reach an on-prem S3). A model whose directory already
holds a config.json is left as it is. Each model is written into a hidden directory beside its
target and renamed into place, so readers never see half a model."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def from_s3(url: str, work: Path) -> None:
    import boto3

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/") + "/"
    s3 = boto3.client("s3", endpoint_url=os.environ.get("HONE_S3_ENDPOINT_URL") or None)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :]
            if not rel or rel.endswith("/"):
                continue
            dest = work / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(dest))
            count += 1
    if not (work / "config.json").is_file():
        raise SystemExit(f"{url}: no config.json among {count} objects; is the prefix a model directory?")


def main() -> int:
    root = Path(os.environ.get("MODELS_DIR", "/models"))
    for item in filter(None, (s.strip() for s in os.environ["MODELS"].split(","))):
        name, _, source = item.partition("=")
        target = root / name
        if (target / "config.json").is_file():
            print(f"{name}: already on the volume at {target}", flush=True)
            continue
        work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".populate", dir=root))
        try:
            if source == "builtin":
                shutil.rmtree(work)  # make-model builds into a directory that does not exist yet
                subprocess.run(["hone", "make-model", name, "--out", str(work)], check=True)
            elif source.startswith("s3://"):
                from_s3(source, work)
            else:
                raise SystemExit(f"{name}: unknown source {source!r} (use builtin or s3://bucket/prefix)")
            work.chmod(0o755)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"{name}: written to {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
