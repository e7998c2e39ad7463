"""Rendering the k8s/ manifests for the tests: ``kubectl kustomize`` of each overlay, alone and
with each optional component, or of an operator's overlay on top of one; lookups in what it
renders (objects, ConfigMaps, pods, containers, their environment, the catalog); the trainer
Jobs the launcher builds from it; and the Dockerfile's targets and user.

Without kubectl a test that renders skips, except under CI=true where it fails: a skip must
not hide it.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from contract.spec import JobSpec
from service.catalog.catalog import BaseModelEntry
from service.config import Settings
from service.launcher.config import KubernetesLauncherConfig
from service.launcher.kubernetes import build
from tests.harness.records import job_spec

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("gpu", "dev")
COMPONENTS = sorted(p.parent.name for p in (K8S / "components").glob("*/kustomization.yaml"))
# Components that name objects of the gpu overlay's model (the dev overlay serves another one).
GPU_ONLY = {"keda"}
CASES = [(o, None) for o in OVERLAYS] + [
    (o, c) for o in OVERLAYS for c in COMPONENTS if not (o == "dev" and c in GPU_ONLY)
]
CASE_IDS = [o if c is None else f"{o}+{c}" for o, c in CASES]
NAMESPACE = "hone"
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "CustomResourceDefinition",
    "ClusterQueue",
    "ResourceFlavor",
    "GatewayClass",
}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
# Secrets the gpu overlay expects to exist (its kustomization.yaml lists them for the operator);
# the dev overlay creates them, with development values.
EXTERNAL_SECRETS = {
    "hone-database",
    "hone-api-storage",
    "hone-trainer-storage",
    "hone-inference-storage",
    "hone-vllm-api-key",
}
# Objects a component expects the operator to provide (its kustomization.yaml says so).
EXTERNAL_BY_COMPONENT = {
    "ca-bundle": {"hone-ca-bundle"},
    "ingress": {"hone-tls"},
    "gateway-api": {"hone-tls"},
    "registry-credentials": {"hone-registry"},
}
Built = tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]
HONE_IMAGE = re.compile(r"^(?:.+/)?hone/(?P<target>[a-z0-9-]+)(?P<ref>[:@].+)?$")
# API versions Kubernetes itself serves (kubernetes-validate has their schemas); others are CRDs.
BUILTIN_API_VERSIONS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}


# --- rendering -------------------------------------------------------------------------------


def kustomize(path: Path) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl (with kustomize) is required in CI: install it, do not skip these tests")
        pytest.skip("needs kubectl (kustomize)")
    out = subprocess.run(["kubectl", "kustomize", str(path)], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


_TMP = Path(tempfile.mkdtemp(prefix="hone-kustomize-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def on_top_of(overlay: str, fields: dict[str, Any]) -> Path:
    """An operator's own overlay of ``overlay`` with these kustomization fields (kustomize wants
    relative paths)."""
    root = Path(tempfile.mkdtemp(dir=_TMP))
    doc = {"resources": [os.path.relpath(K8S / "overlays" / overlay, root)], **fields}
    (root / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    return root


def with_component(overlay: str, component: str) -> Path:
    """A copy of k8s/ whose ``overlay`` lists ``component``, as an operator enables one."""
    root = Path(tempfile.mkdtemp(dir=_TMP)) / "k8s"
    shutil.copytree(K8S, root)
    path = root / "overlays" / overlay / "kustomization.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["components"] = [*doc.get("components", []), f"../../components/{component}"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path.parent


@cache
def _render(overlay: str, component: str | None) -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(K8S / "overlays" / overlay if component is None else with_component(overlay, component)))


def render(overlay: str, component: str | None = None) -> list[dict[str, Any]]:
    return list(_render(overlay, component))


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = find(docs, kind, name)
    return doc


def config_map(docs: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """A ConfigMap by name, generated ones (``name-<hash>``) included."""
    (doc,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and re.fullmatch(re.escape(prefix) + r"(-[a-z0-9]{10})?", d["metadata"]["name"])
    ]
    return doc


def pods(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod template metadata, pod spec) of every workload."""
    for d in docs:
        if d["kind"] in WORKLOADS:
            template = d["spec"]["template"]
            pod = dict(template["spec"])
            claims = d["spec"].get("volumeClaimTemplates", [])  # a StatefulSet's per-pod claims
            pod["volumes"] = pod.get("volumes", []) + [{"name": c["metadata"]["name"], "ephemeral": c} for c in claims]
            yield d["metadata"]["name"], template.get("metadata", {}), pod


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("initContainers", [])) + list(pod["containers"])


def env_of(docs: list[dict[str, Any]], c: dict[str, Any]) -> dict[str, str | None]:
    """The container's environment: envFrom ConfigMaps from the render, then env (None: from a
    Secret or a field); Secrets in envFrom add no names here."""
    env: dict[str, str | None] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_map(docs, source["configMapRef"]["name"])["data"])
    for e in c.get("env", []):
        env[e["name"]] = e.get("value")
    return env


def api_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = [
        c for c in one(docs, "Deployment", "hone-api")["spec"]["template"]["spec"]["containers"] if c["name"] == "api"
    ]
    return c


def catalog(docs: list[dict[str, Any]]) -> list[BaseModelEntry]:
    raw = yaml.safe_load(one(docs, "ConfigMap", "hone-catalog")["data"]["catalog.yaml"])
    return [BaseModelEntry.model_validate(m) for m in raw["models"]]


def launcher_config(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> KubernetesLauncherConfig:
    """The launcher's settings exactly as the API pod gets them."""
    for name in list(os.environ):
        if name.startswith("HONE_"):
            monkeypatch.delenv(name)
    for name, value in env_of(docs, api_container(docs)).items():
        if name.startswith("HONE_") and value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("HONE_LAUNCHER__KUBERNETES__NAMESPACE", NAMESPACE)  # the fieldRef's value
    return Settings().launcher.kubernetes


def trainer_jobs(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> list[tuple[BaseModelEntry, Built]]:
    """The launcher's (Job, spec Secret, Service) for each catalog model, on one node and on two."""
    cfg = launcher_config(docs, monkeypatch)
    built = []
    for entry in catalog(docs):
        for nodes in (1, 2):
            spec: JobSpec = job_spec(base_model=entry.name, base_model_source=entry.source)
            built.append((entry, build(spec, entry.training.model_copy(update={"nodes": nodes}), cfg)))
    return built


# --- images ----------------------------------------------------------------------------------


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def dockerfile_targets() -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", dockerfile(), flags=re.MULTILINE | re.IGNORECASE))


def dockerfile_uid() -> int:
    (uid,) = set(re.findall(r"^USER\s+(\d+)\s*$", dockerfile(), flags=re.MULTILINE))
    return int(uid)


def assert_hone_image(image: str) -> None:
    m = HONE_IMAGE.match(image)
    assert m, f"{image} is not an image the Dockerfile builds"
    assert m["target"] in dockerfile_targets(), f"{image}: the Dockerfile has no target {m['target']!r}"
    assert m["ref"] and m["ref"] != ":latest", f"{image}: pin a tag or digest"


# --- selectors -------------------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value, op = labels.get(e["key"]), e["operator"]
        if (op == "In" and value not in e["values"]) or (op == "NotIn" and value in e["values"]):
            return False
        if (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def pod_labels(docs: list[dict[str, Any]], app: str) -> dict[str, str]:
    return next(
        meta["labels"] for _, meta, _ in pods(docs) if meta.get("labels", {}).get("app.kubernetes.io/name") == app
    )
