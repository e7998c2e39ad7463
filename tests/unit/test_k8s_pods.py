"""What would break on a real cluster in the pods, proven on the rendered manifests
(tests/harness/k8s.py) and the trainer Jobs the launcher builds from them, without a cluster:

- every namespaced object is in the ``hone`` namespace (nothing lands in ``default``);
- env names are unique per container (server-side apply rejects duplicates), and every
  ``HONE_`` variable is a real setting or one the code reads;
- every object a pod needs is rendered, or is a Secret the gpu overlay lists for the operator;
  the gpu overlay creates no Secret;
- every path a container reads (catalog, base weights, CA bundle) is under one of its volume
  mounts and every path it writes (data dir, adapter cache, TMPDIR, HOME) on a writable volume;
- the trainer Jobs fit the cluster the overlay describes.

Images: tests/unit/test_k8s_images.py; RBAC and network: tests/unit/test_k8s_access.py; vLLM,
the optional components and ingress: tests/unit/test_k8s_serving.py.

Without kubectl the tests skip, except under CI=true where they fail: a skip must not hide them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import PurePosixPath
from typing import Any

import kubernetes_validate
import pytest

from tests.harness.k8s import (
    CASE_IDS,
    CASES,
    CLUSTER_SCOPED,
    EXTERNAL_BY_COMPONENT,
    EXTERNAL_SECRETS,
    K8S,
    NAMESPACE,
    OVERLAYS,
    REPO,
    assert_hone_image,
    catalog,
    containers,
    dockerfile_uid,
    env_of,
    find,
    kustomize,
    pods,
    render,
    trainer_jobs,
)
from tests.unit.test_docs import settings_variables

# --- namespaces, env -------------------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_every_namespaced_object_is_in_the_hone_namespace(overlay: str, component: str | None) -> None:
    for d in render(overlay, component):
        where = (d["kind"], d["metadata"]["name"])
        if d["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in d["metadata"], where
        else:
            assert d["metadata"].get("namespace") == NAMESPACE, where


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_env_names_are_unique_per_container(overlay: str, component: str | None) -> None:
    for name, _, pod in pods(render(overlay, component)):
        for c in containers(pod):
            names = [e["name"] for e in c.get("env", [])]
            assert len(names) == len(set(names)), (name, c["name"], sorted(n for n in names if names.count(n) > 1))


@cache
def _read_by_code(name: str) -> bool:
    """``name`` appears in the source of a process that is not the control plane."""
    return any(name in p.read_text() for d in ("contract", "inference", "trainer") for p in (REPO / d).rglob("*.py"))


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_hone_variables_are_settings_or_read_by_the_code(overlay: str, component: str | None) -> None:
    docs = render(overlay, component)
    settings = settings_variables()
    for name, _, pod in pods(docs):
        for c in containers(pod):
            for var in env_of(docs, c):
                if not var.startswith("HONE_"):
                    continue
                if c["image"].split(":")[0].endswith("hone/api"):  # the control plane: Settings (and boto3's)
                    assert var in settings or var == "HONE_S3_ENDPOINT_URL", (name, c["name"], var)
                else:
                    assert _read_by_code(var), (name, c["name"], var)


# --- references ------------------------------------------------------------------------------


def _references(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) of every object the pod needs."""
    if pod.get("serviceAccountName", "default") != "default":  # every namespace has "default"
        yield "ServiceAccount", pod["serviceAccountName"]
    for v in pod.get("volumes", []):
        if "configMap" in v:
            yield "ConfigMap", v["configMap"]["name"]
        if "secret" in v:
            yield "Secret", v["secret"]["secretName"]
        if "persistentVolumeClaim" in v:
            yield "PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]
    for c in containers(pod):
        for source in c.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    yield kind, source[key]["name"]
        for e in c.get("env", []):
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in e.get("valueFrom", {}):
                    yield kind, e["valueFrom"][key]["name"]


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_everything_a_pod_needs_is_rendered_or_documented(overlay: str, component: str | None) -> None:
    docs = render(overlay, component)
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    present |= {("ConfigMap", re.sub(r"-[a-z0-9]{10}$", "", n)) for k, n in present if k == "ConfigMap"}
    external = EXTERNAL_BY_COMPONENT.get(component or "", set())
    gpu_doc = (K8S / "overlays" / "gpu" / "kustomization.yaml").read_text()
    for name, _, pod in pods(docs):
        for kind, ref in _references(pod):
            if (kind, ref) in present or ref in external:
                continue
            assert kind == "Secret" and ref in EXTERNAL_SECRETS and overlay == "gpu", (name, kind, ref)
            assert ref in gpu_doc, f"the gpu overlay must list the Secret {ref} it expects"


def test_no_overlay_overwrites_externally_managed_secrets() -> None:
    """Applying the gpu overlay (with any component) creates no Secret; the dev one creates them
    all, so both work."""
    for overlay, component in CASES:
        secrets = {d["metadata"]["name"] for d in find(render(overlay, component), "Secret")}
        if overlay == "gpu":
            assert not secrets, (component, secrets)
        else:
            assert EXTERNAL_SECRETS <= secrets
    assert not find(kustomize(K8S / "base"), "Secret")


# --- paths -----------------------------------------------------------------------------------


def _mounts(pod: dict[str, Any], c: dict[str, Any]) -> dict[str, bool]:
    """mountPath -> writable."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    out = {}
    for m in c.get("volumeMounts", []):
        v = volumes[m["name"]]
        writable = not m.get("readOnly") and any(k in v for k in ("emptyDir", "persistentVolumeClaim", "ephemeral"))
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"].get("readOnly"):
            writable = False
        out[m["mountPath"]] = writable
    return out


def _under(path: str, mounts: dict[str, bool], writable: bool) -> bool:
    p = PurePosixPath(path)
    return any(p == PurePosixPath(m) or PurePosixPath(m) in p.parents for m, w in mounts.items() if w or not writable)


def _paths(docs: list[dict[str, Any]], c: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(paths the container reads, paths it writes), from its env, its command and the catalog."""
    env = env_of(docs, c)
    argv = c.get("command", []) + c.get("args", [])
    reads, writes = [], []
    for var in ("HONE_DATA_DIR", "HONE_ADAPTER_CACHE_DIR", "TMPDIR", "HOME"):
        if env.get(var):
            writes.append(str(env[var]))
    if env.get("HONE_CATALOG_PATH") and argv[:2] == ["hone", "serve"]:  # `hone migrate` reads no catalog
        reads.append(str(env["HONE_CATALOG_PATH"]))
        reads += [e.source for e in catalog(docs) if e.source.startswith("/")]  # tokenizers
    if env.get("AWS_CA_BUNDLE"):
        reads.append(str(env["AWS_CA_BUNDLE"]))
    if "--model" in argv:
        reads.append(argv[argv.index("--model") + 1])
    if argv[:2] in (["hone", "make-tiny-model"], ["hone", "make-model"]):
        writes.append(argv[argv.index("--out") + 1] if "--out" in argv else argv[-1])
    return reads, writes


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_paths_are_mounted_and_writes_are_writable(overlay: str, component: str | None) -> None:
    docs = render(overlay, component)
    for name, _, pod in pods(docs):
        for c in containers(pod):
            mounts = _mounts(pod, c)
            reads, writes = _paths(docs, c)
            image_default = "/etc/ssl/certs/ca-certificates.crt"  # the image's own trust store
            for path in reads:
                assert path == image_default or _under(path, mounts, writable=False), (name, c["name"], "reads", path)
            for path in writes:
                assert _under(path, mounts, writable=True), (name, c["name"], "writes", path)
            if c.get("securityContext", {}).get("readOnlyRootFilesystem"):
                assert _under("/tmp", mounts, writable=True), (name, c["name"], "no writable /tmp")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_trainer_jobs_fit_the_cluster(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Jobs the API would create from this deployment's settings and catalog: in the
    namespace, an image the Dockerfile builds, its user, objects the render has, writable
    scratch and temp, the base weights mounted."""
    docs = render(overlay)
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    uid = dockerfile_uid()
    for entry, (job, secret, service) in trainer_jobs(docs, monkeypatch):
        for obj in (job, secret, service):
            if obj is not None:
                assert obj["metadata"]["namespace"] == NAMESPACE
                for version in ("1.29.0", kubernetes_validate.latest_version()):
                    kubernetes_validate.validate(obj, version, strict=True)
        pod = job["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["runAsGroup"] == uid
        for kind, ref in _references(pod):
            assert (kind, ref) in present or ref == secret["metadata"]["name"] or ref in EXTERNAL_SECRETS, (kind, ref)
        (c,) = pod["containers"]
        assert_hone_image(c["image"])
        mounts = _mounts(pod, c)
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        for var in ("HOME", "TMPDIR"):
            assert env.get(var) and _under(str(env[var]), mounts, writable=True), (var, env.get(var), mounts)
        assert _under("/tmp", mounts, writable=True)
        assert _under(entry.source, mounts, writable=False), (entry.source, mounts)
