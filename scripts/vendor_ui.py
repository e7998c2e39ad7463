#!/usr/bin/env python3
"""Vendors the dashboard's third-party browser code at pinned versions, with its license.

The dashboard (service/ui) runs in VPCs without internet, so nothing is loaded from a CDN: this
script downloads each package's npm tarball once (at set-up, or when an image is built), checks
it against the pinned sha512 integrity npm published, and extracts the listed files into
``service/ui/static/vendor/<name>/``. Nothing there is committed (.gitignore); a second run
with the same pins does nothing. ``NPM_CONFIG_REGISTRY`` points it at a mirror.

    python scripts/vendor_ui.py           # vendor what is missing or stale
    python scripts/vendor_ui.py --check   # exit 1 unless every package is vendored as pinned
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parents[1] / "service" / "ui" / "static" / "vendor"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # npm's dist.integrity of the tarball
    files: dict[str, str]  # path inside the tarball -> file name under vendor/<name>/

    def tarball_url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name}-{self.version}.tgz"


# uPlot (MIT): the loss curves. 50 kB, no dependencies, draws on a canvas, styles set via CSSOM
# (allowed by the dashboard's Content-Security-Policy, which forbids inline style attributes).
PACKAGES = (
    Package(
        name="uplot",
        version="1.6.32",
        integrity="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        files={
            "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
            "package/dist/uPlot.min.css": "uPlot.min.css",
            "package/LICENSE": "LICENSE",
        },
    ),
)


def stamp(pkg: Package) -> Path:
    return VENDOR_DIR / pkg.name / "VERSION"


def is_current(pkg: Package) -> bool:
    target = VENDOR_DIR / pkg.name
    return (
        stamp(pkg).is_file()
        and stamp(pkg).read_text().strip() == f"{pkg.version} {pkg.integrity}"
        and all((target / out).is_file() for out in pkg.files.values())
    )


def check_integrity(pkg: Package, data: bytes) -> None:
    algo, _, expected = pkg.integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{pkg.name}@{pkg.version}: the tarball's {algo} is {actual}, the pin says {expected}")


def vendor(pkg: Package, registry: str) -> None:
    url = pkg.tarball_url(registry)
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (a fixed https URL)
        data = resp.read()
    check_integrity(pkg, data)
    target = VENDOR_DIR / pkg.name
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for inner, out in pkg.files.items():
            member = tar.extractfile(inner)
            if member is None:
                raise SystemExit(f"{pkg.name}@{pkg.version}: {inner} is not a file in {url}")
            (target / out).write_bytes(member.read())
    stamp(pkg).write_text(f"{pkg.version} {pkg.integrity}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that every package is vendored as pinned")
    args = parser.parse_args(argv)
    registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org")
    stale = [pkg for pkg in PACKAGES if not is_current(pkg)]
    if args.check:
        for pkg in stale:
            print(f"{pkg.name}@{pkg.version} is not vendored: run scripts/vendor_ui.py", file=sys.stderr)
        return 1 if stale else 0
    for pkg in stale:
        vendor(pkg, registry)
        print(f"vendored {pkg.name}@{pkg.version} into {VENDOR_DIR / pkg.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
