"""docs/deploy.md, followed where a test can follow it (no cluster, registry or GPU here):

- every file the guide tells you to write under ``k8s/`` (a ```yaml block whose first line is
  ``# k8s/...``) is written into a copy of k8s/, and every ``kubectl kustomize`` / ``kubectl apply
  -k`` / ``kubectl delete -k`` path in its shell blocks renders there, each object valid against
  the Kubernetes 1.29 schemas and the newest (custom resources excepted);
- the image inventory lists every image the overlays and components run and every base image
  the Dockerfile builds from, and nothing else;
- each ``--build-arg`` it passes is an ``ARG`` of the Dockerfile, each ``--target`` a stage;
- the GPU driver it asks for matches the CUDA version of the trainer's base image;
- every Secret and ConfigMap a pod reads that no overlay creates is in its table of things you
  create, and every ``k8s/components/...`` it names exists.

The pod smoke test (tests/integration/test_pod_smoke.py) runs what the guide's overlays render.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
# API groups Kubernetes itself serves (kubernetes-validate has their schemas); others are CRDs.
CORE_GROUPS = {"", "apps", "batch", "policy", "networking.k8s.io", "rbac.authorization.k8s.io", "autoscaling"}
# The smallest NVIDIA Linux driver for each CUDA toolkit the trainer base image may carry.
MIN_DRIVER = {"12.4": 550, "12.6": 560, "12.8": 570, "12.9": 575, "13.0": 580}

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")


def doc() -> str:
    return DOC.read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", doc(), re.DOTALL)


def section(title: str) -> str:
    """The text of the ``## title`` section (up to the next ``## ``)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", doc(), re.DOTALL | re.MULTILINE)
    assert match, f"docs/deploy.md has no section '## {title}'"
    return match.group(1)


def written_files() -> dict[str, str]:
    """The files the guide has you write: path (from its first-line comment) -> content."""
    files = {}
    for block in blocks("yaml"):
        first = block.splitlines()[0]
        if first.startswith("# k8s/"):
            files[first[2:].strip()] = block
    return files


def render_paths() -> list[str]:
    paths = []
    for block in blocks("bash"):
        for line in block.splitlines():
            m = re.search(r"kubectl (?:kustomize|apply .*?-k|delete .*?-k) (k8s/\S+)", line)
            if m:
                paths.append(m.group(1).rstrip("/"))
    return list(dict.fromkeys(paths))


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's k8s/ with the guide's files written into it."""
    root = tmp_path_factory.mktemp("deploy-doc")
    shutil.copytree(ROOT / "k8s", root / "k8s")
    for path, content in written_files().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return root


def kustomize(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {path}: {done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_the_guide_writes_an_overlay_and_renders_it() -> None:
    files = written_files()
    assert any(p.startswith("k8s/overlays/") and p.endswith("kustomization.yaml") for p in files), files
    assert "k8s/overlays/gpu" in render_paths() or any(p.startswith("k8s/overlays/") for p in render_paths())


@pytest.mark.parametrize("path", render_paths())
def test_every_render_in_the_guide_is_valid(path: str, followed: Path) -> None:
    docs = kustomize(followed / path)
    assert docs, path
    for obj in docs:
        group = obj["apiVersion"].rpartition("/")[0]
        if group not in CORE_GROUPS:
            continue  # a custom resource: its CRD's schema is not here
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "hone", (path, obj["kind"], obj["metadata"]["name"])


def _images(docs: list[dict[str, Any]]) -> set[str]:
    out = set()
    for d in docs:
        spec = d.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template", {}
        ).get("spec")
        for c in (pod or {}).get("containers", []) + (pod or {}).get("initContainers", []):
            out.add(c["image"])
        for key, value in (d.get("data") or {}).items() if d["kind"] == "ConfigMap" else ():
            if key.endswith("TRAINER_IMAGE"):
                out.add(value)
    return out


def _dockerfile_bases() -> set[str]:
    text = (ROOT / "Dockerfile").read_text()
    return set(re.findall(r"^ARG \w*(?:IMAGE|BASE)=(\S+)$", text, re.MULTILINE))


def _inventory() -> set[str]:
    table = section("Images")
    return set(re.findall(r"^\|\s*`([^`]+)`", table, re.MULTILINE))


def test_the_image_inventory_is_complete_and_exact(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "k8s", tmp_path / "k8s")
    gpu = tmp_path / "k8s" / "overlays" / "gpu" / "kustomization.yaml"
    overlay = yaml.safe_load(gpu.read_text())
    components = sorted(p.parent.name for p in (ROOT / "k8s" / "components").glob("*/kustomization.yaml"))
    overlay["components"] = [f"../../components/{c}" for c in components]  # every one at once
    gpu.write_text(yaml.safe_dump(overlay))
    run = _images(kustomize(gpu.parent)) | _images(kustomize(ROOT / "k8s" / "overlays" / "dev"))
    listed = _inventory()
    expected = run | _dockerfile_bases()
    assert listed == expected, (
        f"missing from the guide: {sorted(expected - listed)}; not run: {sorted(listed - expected)}"
    )


def test_build_arguments_and_targets_are_the_dockerfiles() -> None:
    text = (ROOT / "Dockerfile").read_text()
    args = set(re.findall(r"^ARG (\w+)", text, re.MULTILINE))
    targets = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.MULTILINE))
    shell = "\n".join(blocks("bash"))
    used_args = set(re.findall(r"--build-arg (\w+)=", shell))
    used_targets = set(re.findall(r"--target (\S+)", shell))
    assert used_args and used_args <= args, used_args - args
    assert used_targets == targets, (used_targets, targets)


def test_the_gpu_driver_matches_the_trainer_base_image() -> None:
    base = re.search(r"^ARG TRAINER_BASE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert base
    cuda = re.search(r"cuda(\d+\.\d+)", base.group(1))
    assert cuda and cuda.group(1) in MIN_DRIVER, base.group(1)
    gpu = section("GPU nodes")
    assert base.group(1) in gpu and f"CUDA {cuda.group(1)}" in gpu, "the guide names another trainer base image"
    assert re.search(rf"driver {MIN_DRIVER[cuda.group(1)]}\b", gpu), (
        f"the guide must ask for driver {MIN_DRIVER[cuda.group(1)]}"
    )


def _referenced(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    refs = set()
    for d in docs:
        pod = d.get("spec", {}).get("template", {}).get("spec")
        if not pod:
            continue
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            for src in c.get("envFrom", []):
                if "secretRef" in src and not src["secretRef"].get("optional"):
                    refs.add(("Secret", src["secretRef"]["name"]))
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    refs.add(("Secret", ref["name"]))
        for vol in pod.get("volumes", []):
            if "secret" in vol and not vol["secret"].get("optional"):
                refs.add(("Secret", vol["secret"]["secretName"]))
            if "configMap" in vol and not vol["configMap"].get("optional"):
                refs.add(("ConfigMap", vol["configMap"]["name"]))
        for s in pod.get("imagePullSecrets", []):
            refs.add(("Secret", s["name"]))
    for d in docs:
        if d["kind"] == "ServiceAccount":
            refs |= {("Secret", s["name"]) for s in d.get("imagePullSecrets", [])}
        if d["kind"] == "Ingress":
            refs |= {("Secret", t["secretName"]) for t in d["spec"].get("tls", [])}
    return refs


def test_everything_you_create_is_in_the_guide(followed: Path) -> None:
    """The Secrets and ConfigMaps the guide's overlay needs but does not render are exactly those
    its 'Secrets' section tells you to create."""
    overlays = [p for p in written_files() if p.startswith("k8s/overlays/") and p.endswith("kustomization.yaml")]
    missing: set[str] = set()
    for path in overlays:
        docs = kustomize((followed / path).parent)
        present = {(d["kind"], d["metadata"]["name"]) for d in docs}
        generated = {(d["kind"], re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])) for d in docs}
        missing |= {name for kind, name in _referenced(docs) if (kind, name) not in present | generated}
    table = section("Secrets")
    listed = set(re.findall(r"^\|\s*`([a-z0-9-]+)`", table, re.MULTILINE))
    assert missing and missing <= listed, f"not in the guide's Secrets table: {sorted(missing - listed)}"


def test_components_the_guide_names_exist() -> None:
    named = set(re.findall(r"components/([a-z0-9-]+)", doc()))
    present = {p.parent.name for p in (ROOT / "k8s" / "components").glob("*/kustomization.yaml")}
    assert named and named <= present, named - present


def test_the_runtime_class_snippet_reaches_vllm_and_the_trainer_setting(followed: Path, tmp_path: Path) -> None:
    """The GPU section's snippet, added to the guide's overlay, renders: vLLM pods get the
    RuntimeClass and the API's config names it for the trainer Jobs it builds."""
    import textwrap

    (snippet,) = [b for b in blocks("yaml") if "RUNTIME_CLASS_NAME" in b]
    extra = yaml.safe_load(textwrap.dedent(snippet))
    overlays = [p for p in written_files() if p.startswith("k8s/overlays/") and p.endswith("kustomization.yaml")]
    path = followed / overlays[0]
    overlay = yaml.safe_load(path.read_text())
    for key, value in extra.items():
        overlay[key] = [*overlay.get(key, []), *value]
    shutil.copytree(followed / "k8s", tmp_path / "k8s")
    target = tmp_path / overlays[0]
    target.write_text(yaml.safe_dump(overlay, sort_keys=False))
    docs = kustomize(target.parent)
    vllm = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("hone-vllm-")]
    assert vllm and all(d["spec"]["template"]["spec"].get("runtimeClassName") == "nvidia" for d in vllm)
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("hone-api-config")]
    name = re.search(r"(HONE_\w+)=nvidia", snippet)
    assert name and config["data"][name.group(1)] == "nvidia"
    for obj in docs:
        if obj["apiVersion"].rpartition("/")[0] in CORE_GROUPS:
            kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)
