"""What would break on a real cluster, proven on the rendered manifests (``kubectl kustomize`` of
each overlay, alone and with each optional component) and the trainer Jobs the launcher builds
from them, without a cluster:

- every namespaced object is in the ``hone`` namespace (nothing lands in ``default``);
- env names are unique per container (server-side apply rejects duplicates), and every
  ``HONE_`` variable is a real setting or one the code reads;
- every path a container reads (catalog, base weights, CA bundle) is under one of its volume
  mounts and every path it writes (data dir, adapter cache, TMPDIR, HOME) on a writable volume;
- images are tagged (no ``:latest``) and are ones the Dockerfile builds;
- the API's RBAC verbs are exactly the Kubernetes calls the code makes;
- NetworkPolicies let the API, vLLM and trainers reach the object store on its configured port;
- vLLM serves what the catalog says, with an API key only the gateway sends, and the gateway
  can discover its replicas;
- the base needs no CRD and creates no Secret; the optional components are complete.

Without kubectl the tests skip, except under CI=true where they fail: a skip must not hide them.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from contract.spec import JobSpec
from service.catalog.catalog import BaseModelEntry
from service.config import Settings
from service.gateway.config import GatewaySettings
from service.launcher.config import KubernetesLauncherConfig
from service.launcher.kubernetes import build
from tests.harness.records import job_spec
from tests.unit.test_docs import settings_variables

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


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_images_are_pinned_and_built_by_the_dockerfile(overlay: str, component: str | None) -> None:
    docs = render(overlay, component)
    images = {c["image"] for _, _, pod in pods(docs) for c in containers(pod)}
    images.add(str(env_of(docs, api_container(docs))["HONE_LAUNCHER__KUBERNETES__TRAINER_IMAGE"]))
    for image in images:
        name, _, tag = image.rpartition(":") if "@" not in image else (image, "", "digest")
        assert tag and tag != "latest" and "/" not in tag, f"{image}: pin a tag or digest"
        if HONE_IMAGE.match(image) or overlay == "gpu":  # the gpu overlay runs only hone's images
            assert_hone_image(image)


def test_images_rewrites_the_trainer_image_too() -> None:
    """The trainer image is the API's setting, yet kustomize ``images:`` rewrites it like the
    others (an air-gapped mirror renames every image in one place)."""
    mirror = {
        "images": [
            {"name": f"ghcr.io/hone/{t}", "newName": f"registry.internal/hone/{t}", "newTag": "9.9.9"}
            for t in ("api", "trainer", "inference")
        ]
    }
    docs = kustomize(on_top_of("gpu", mirror))
    trainer = env_of(docs, api_container(docs))["HONE_LAUNCHER__KUBERNETES__TRAINER_IMAGE"]
    assert trainer == "registry.internal/hone/trainer:9.9.9"
    assert {c["image"] for _, _, pod in pods(docs) for c in containers(pod)} == {
        "registry.internal/hone/api:9.9.9",
        "registry.internal/hone/inference:9.9.9",
    }


def test_dockerfile_builds_for_an_air_gapped_vpc() -> None:
    text = dockerfile()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    assert {"api", "trainer", "inference", "trainer-cpu", "inference-cpu"} == dockerfile_targets()
    # No frontend image from Docker Hub: the builder's built-in one parses the file.
    assert not re.search(r"^#\s*syntax=", text, flags=re.MULTILINE | re.IGNORECASE)
    for stage in stages:
        target = stage.split()[2]
        assert re.search(r"^ARG PIP_INDEX_URL\b", stage, flags=re.MULTILINE), target
        assert re.search(r"^ARG CA_CERT\b", stage, flags=re.MULTILINE), target
        assert re.search(r"^USER 10001$", stage, flags=re.MULTILINE), target
        runs = re.findall(r"^RUN (.*?)(?<!\\)$", stage, flags=re.MULTILINE | re.DOTALL)
        for run in runs:
            assert "|| true" not in run, (target, run)
            if "pip install" in run:  # a failed install must fail the build
                assert "||" not in run, (target, run)
    for target in ("inference", "inference-cpu"):  # vLLM's image has python3 only
        stage = next(s for s in stages if s.split()[2] == target)
        assert "VLLM_NO_USAGE_STATS=1" in stage and "DO_NOT_TRACK=1" in stage
        assert re.search(r'^CMD \["python3"', stage, flags=re.MULTILINE)


def test_build_system_accepts_the_license_string() -> None:
    """``license = "Apache-2.0"`` (an SPDX string) needs setuptools 77."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)
    (setuptools,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    m = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert m and int(m[1]) >= 77, setuptools


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_hone_pods_run_as_the_image_user(overlay: str, component: str | None) -> None:
    uid = dockerfile_uid()
    for name, _, pod in pods(render(overlay, component)):
        if all(HONE_IMAGE.match(c["image"]) for c in containers(pod)):
            assert pod["securityContext"]["runAsUser"] == uid, name
            assert pod["securityContext"]["runAsGroup"] == uid, name


# --- RBAC ------------------------------------------------------------------------------------

_CALL = re.compile(r"\.(create|read|list|delete|patch|replace|delete_collection)_namespaced_(\w+?)\b")
# a list method handed over uncalled is streamed: to ``watch.stream`` or to an ``Informer``
_WATCH = re.compile(r"\.list_namespaced_(\w+?)\b(?!\s*\()")
_VERB = {"create": "create", "read": "get", "list": "list", "delete": "delete", "patch": "patch"}
_VERB |= {"replace": "update", "delete_collection": "deletecollection"}
_GROUP = {"job": "batch", "endpoint_slice": "discovery.k8s.io", "ingress": "networking.k8s.io"}
_SUBRESOURCE = {"pod_log": "pods/log", "job_status": "jobs/status"}


def called_permissions() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every namespaced call in service/ with the official client
    (``batch.create_namespaced_job``; ``api.list_namespaced_x`` passed uncalled, to
    ``watch.stream`` or to ``service.kube_informer.Informer``, is a watch)."""
    perms = set()
    for path in (REPO / "service").rglob("*.py"):
        text = path.read_text()
        found = [(_VERB[v], kind) for v, kind in _CALL.findall(text)] + [("watch", k) for k in _WATCH.findall(text)]
        for verb, kind in found:
            resource = _SUBRESOURCE.get(kind, kind + "s")
            group = _GROUP.get(kind.removesuffix("_log").removesuffix("_status"), "")
            perms.add((group, resource.replace("_", ""), verb))
    return perms


def test_rbac_grants_exactly_what_the_code_calls() -> None:
    called = called_permissions()
    assert ("batch", "jobs", "create") in called  # the grep finds the launcher
    for overlay in OVERLAYS:
        docs = render(overlay)
        (role,) = find(docs, "Role")
        granted = {
            (g, r, v)
            for rule in role["rules"]
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for v in rule["verbs"]
        }
        assert granted == called, {"granted, never called": granted - called, "called, not granted": called - granted}
        assert not find(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding")
        (binding,) = find(docs, "RoleBinding")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hone-api", "namespace": NAMESPACE}]


# --- network ---------------------------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value, op = labels.get(e["key"]), e["operator"]
        if (op == "In" and value not in e["values"]) or (op == "NotIn" and value in e["values"]):
            return False
        if (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def _peer_ok(peers: list[dict[str, Any]] | None, labels: dict[str, str] | None) -> bool:
    """Does a rule's to/from list admit a pod with ``labels`` in this namespace (None: an
    address outside the cluster)?"""
    if not peers:
        return True
    for peer in peers:
        if labels is None and "ipBlock" in peer:
            return True
        if labels is not None and "podSelector" in peer and "namespaceSelector" not in peer:
            if _selects(peer["podSelector"], labels):
                return True
    return False


def _port_ok(ports: list[dict[str, Any]] | None, port: int) -> bool:
    return not ports or any(p.get("protocol", "TCP") == "TCP" and p.get("port") in (port, None) for p in ports)


def allowed(docs: list[dict[str, Any]], src: dict[str, str], dst: dict[str, str] | None, port: int) -> bool:
    """NetworkPolicy semantics (additive, per direction) for TCP from ``src`` to ``dst`` pods
    (None: outside the cluster) on ``port``."""
    policies = [d["spec"] for d in find(docs, "NetworkPolicy")]

    def permits(direction: str, me: dict[str, str], peer: dict[str, str] | None) -> bool:
        mine = [p for p in policies if _selects(p["podSelector"], me) and direction in p.get("policyTypes", [])]
        key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        return not mine or any(
            _peer_ok(rule.get(peers), peer) and _port_ok(rule.get("ports"), port)
            for p in mine
            for rule in p.get(key, [])
        )

    return permits("Egress", src, dst) and (dst is None or permits("Ingress", dst, src))


def _pod_labels(docs: list[dict[str, Any]], app: str) -> dict[str, str]:
    return next(
        meta["labels"] for _, meta, _ in pods(docs) if meta.get("labels", {}).get("app.kubernetes.io/name") == app
    )


def storage_endpoint(docs: list[dict[str, Any]]) -> tuple[dict[str, str] | None, int]:
    """(labels of the in-cluster pods behind HONE_S3_ENDPOINT_URL or None, the pods' port)."""
    url = config_map(docs, "hone-storage")["data"].get("HONE_S3_ENDPOINT_URL") or "https://s3.amazonaws.com"
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = str(parts.hostname)
    name, _, rest = host.partition(".")
    if rest.startswith(f"{NAMESPACE}.svc") or not rest:
        service = one(docs, "Service", name)
        (target,) = [p["targetPort"] for p in service["spec"]["ports"] if p["port"] == port]
        labels = next(
            m["labels"]
            for _, m, _ in pods(docs)
            if _selects({"matchLabels": service["spec"]["selector"]}, m.get("labels", {}))
        )
        if isinstance(target, str):  # a named port: the container's
            _, _, pod = next(p for p in pods(docs) if p[1].get("labels") == labels)
            target = next(
                cp["containerPort"] for c in pod["containers"] for cp in c.get("ports", []) if cp.get("name") == target
            )
        return labels, int(target)
    return None, port


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_network_policies_let_storage_clients_reach_the_store(
    overlay: str, component: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(overlay, component)
    assert one(docs, "NetworkPolicy", "default-deny")["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    dst, port = storage_endpoint(docs)
    trainer = trainer_jobs(docs, monkeypatch)[0][1][0]["spec"]["template"]["metadata"]["labels"]
    for src in (_pod_labels(docs, "hone-api"), _pod_labels(docs, "hone-vllm"), trainer):
        assert allowed(docs, src, dst, port), (src["app.kubernetes.io/name"], dst, port)
    api, vllm = _pod_labels(docs, "hone-api"), _pod_labels(docs, "hone-vllm")
    assert (
        allowed(docs, api, vllm, 8000) and allowed(docs, trainer, api, 8000) and allowed(docs, trainer, trainer, 29500)
    )
    assert not allowed(docs, trainer, vllm, 8000)  # only the API reaches vLLM


@pytest.mark.parametrize("port", [9000, 7480, 80])
def test_the_storage_port_is_set_in_one_policy(port: int) -> None:
    """MinIO (9000) and Ceph RGW (7480, 80): point the endpoint at the store and patch one
    NetworkPolicy's port, and every storage client reaches it."""
    extra = {
        "configMapGenerator": [
            {
                "name": "hone-storage",
                "behavior": "merge",
                "literals": [f"HONE_S3_ENDPOINT_URL=http://rgw.storage.internal:{port}"],
            }
        ],
        "patches": [
            {
                "target": {"kind": "NetworkPolicy", "name": "hone-storage-egress"},
                "patch": f"- {{op: replace, path: /spec/egress/0/ports/0/port, value: {port}}}",
            }
        ],
    }
    docs = kustomize(on_top_of("gpu", extra))
    dst, got = storage_endpoint(docs)
    assert dst is None and got == port
    for app in ("hone-api", "hone-vllm"):
        assert allowed(docs, _pod_labels(docs, app), None, port), app
    assert allowed(docs, {"app.kubernetes.io/name": "hone-trainer"}, None, port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_object_store_is_configured_in_one_place(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(overlay)
    holders = [
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if "HONE_S3_ENDPOINT_URL" in (d.get("data") or {}) or "HONE_S3_ENDPOINT_URL" in (d.get("stringData") or {})
    ]
    assert holders == [("ConfigMap", "hone-storage")]
    for name, _, pod in pods(docs):
        for c in containers(pod):
            assert not any(e["name"].startswith(("HONE_S3_", "HONE_STORAGE_URL")) for e in c.get("env", [])), name
    assert {"configMapRef": {"name": "hone-storage"}} in api_container(docs)["envFrom"]
    for _, (job, _, _) in trainer_jobs(docs, monkeypatch):
        assert {"configMapRef": {"name": "hone-storage"}} in job["spec"]["template"]["spec"]["containers"][0]["envFrom"]


# --- vLLM ------------------------------------------------------------------------------------


def _arg(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_vllm_serves_the_catalog(overlay: str) -> None:
    docs = render(overlay)
    entries = {e.name: e for e in catalog(docs)}
    deployments = [
        d for d in find(docs, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/name"] == "hone-vllm"
    ]
    assert {d["metadata"]["labels"]["hone.dev/base-model"] for d in deployments} == set(entries)
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        argv, env = c["command"] + c["args"], env_of(docs, c)
        entry = entries[d["metadata"]["labels"]["hone.dev/base-model"]]
        assert c["command"][0] == "python3"  # the vLLM images have no `python`
        assert _arg(argv, "--model") == entry.source and _arg(argv, "--served-model-name") == entry.name
        assert (
            env["HONE_BASE_MODEL"] == entry.name == d["spec"]["template"]["metadata"]["labels"]["hone.dev/base-model"]
        )
        assert _arg(argv, "--max-lora-rank") == str(entry.max_lora_rank)
        assert entry.context_length and _arg(argv, "--max-model-len") == str(entry.context_length)
        assert "--disable-log-stats" not in argv  # it also turns off /metrics, which scaling reads
        assert env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1"
        (key,) = [e for e in c["env"] if e["name"] == "VLLM_API_KEY"]
        assert key["valueFrom"]["secretKeyRef"] == {"name": "hone-vllm-api-key", "key": "api-key"}
        gpus = c["resources"].get("limits", {}).get("nvidia.com/gpu")
        strategy = d["spec"].get("strategy", {})
        assert not gpus or strategy.get("type") == "Recreate" or strategy["rollingUpdate"]["maxSurge"] == 0
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert [p for p in find(docs, "PodDisruptionBudget") if _selects(p["spec"]["selector"], labels)]
        for url in entry.upstreams:  # the static upstreams resolve to a Service of these pods
            host = str(urlsplit(url).hostname).split(".")[0]
            assert _selects({"matchLabels": one(docs, "Service", host)["spec"]["selector"]}, labels), url


def _selector_labels(selector: str) -> tuple[dict[str, str], set[str]]:
    pairs = dict(p.split("=", 1) for p in selector.split(",") if "=" in p)
    return pairs, {p for p in selector.split(",") if "=" not in p}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_can_discover_every_vllm_replica(overlay: str) -> None:
    """Each base model has a headless Service whose EndpointSlices match the gateway's selector
    (the endpoint controller adds service.kubernetes.io/headless to a headless Service's)."""
    docs = render(overlay)
    env = env_of(docs, api_container(docs))
    assert env["HONE_GATEWAY__DISCOVERY"] == "kubernetes"
    gateway = GatewaySettings()
    pairs, keys = _selector_labels(gateway.selector)
    for entry in catalog(docs):
        headless = [
            s
            for s in find(docs, "Service")
            if s["spec"].get("clusterIP") == "None"
            and s["metadata"]["labels"].get(gateway.model_label) == entry.name
            and all(s["metadata"]["labels"].get(k) == v for k, v in pairs.items())
        ]
        assert len(headless) == 1 and keys <= {"service.kubernetes.io/headless"}, entry.name
        assert gateway.port_name in {p["name"] for p in headless[0]["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_vllm_key_reaches_only_vllm_and_the_gateway(overlay: str) -> None:
    docs = render(overlay)
    readers = set()
    for name, _, pod in pods(docs):
        for c in containers(pod):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef", {})
                if ref.get("name") == "hone-vllm-api-key":
                    readers.add((name.split("-")[1], c["name"], e["name"]))
            assert {"secretRef": {"name": "hone-vllm-api-key"}} not in c.get("envFrom", []), name
    assert readers == {("api", "api", "HONE_GATEWAY__UPSTREAM_API_KEY"), ("vllm", "vllm", "VLLM_API_KEY")}


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_probes_have_explicit_timeouts(overlay: str, component: str | None) -> None:
    for name, _, pod in pods(render(overlay, component)):
        for c in containers(pod):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in c:
                    assert "timeoutSeconds" in c[probe], (name, c["name"], probe)


# --- optional components ---------------------------------------------------------------------

BUILTIN_API_VERSIONS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlays_need_no_crd_and_no_kueue(overlay: str) -> None:
    docs = render(overlay)
    assert {d["apiVersion"] for d in docs} <= BUILTIN_API_VERSIONS
    assert not env_of(docs, api_container(docs)).get("HONE_LAUNCHER__KUBERNETES__KUEUE_QUEUE")


def test_the_kueue_component_names_a_queue_it_creates() -> None:
    docs = render("gpu", "kueue")
    queue = env_of(docs, api_container(docs))["HONE_LAUNCHER__KUBERNETES__KUEUE_QUEUE"]
    (local,) = find(docs, "LocalQueue", queue)
    assert local["apiVersion"].startswith("kueue.x-k8s.io/") and local["spec"]["clusterQueue"]
    example = list(yaml.safe_load_all((K8S / "components" / "kueue" / "clusterqueue.example.yaml").read_text()))
    assert local["spec"]["clusterQueue"] in {d["metadata"]["name"] for d in example if d["kind"] == "ClusterQueue"}


def test_the_ca_bundle_reaches_every_storage_client(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render("gpu", "ca-bundle")
    for name, _, pod in pods(docs):
        for c in pod["containers"]:
            if c["name"] in ("api", "vllm"):
                assert env_of(docs, c)["AWS_CA_BUNDLE"] == "/etc/hone/ca/ca.crt", name
    for _, (job, _, _) in trainer_jobs(docs, monkeypatch):
        pod = job["spec"]["template"]["spec"]
        assert {"name": "AWS_CA_BUNDLE", "value": "/etc/hone/ca/ca.crt"} in pod["containers"][0]["env"]
        assert any(v.get("configMap", {}).get("name") == "hone-ca-bundle" for v in pod["volumes"])


def test_trainer_job_settings_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pull secrets, extra env, deadline and TTL of trainer Jobs: keys of hone-api-config that an
    overlay merges, and the Jobs the API builds carry them."""
    base = config_map(render("gpu"), "hone-api-config")["data"]
    keys = ("IMAGE_PULL_SECRETS", "EXTRA_ENV", "ACTIVE_DEADLINE_S", "TTL_AFTER_FINISHED_S")
    assert all(f"HONE_LAUNCHER__KUBERNETES__{k}" in base for k in keys)
    literals = [
        "HONE_LAUNCHER__KUBERNETES__IMAGE_PULL_SECRETS=mirror-pull",
        'HONE_LAUNCHER__KUBERNETES__EXTRA_ENV={"HTTPS_PROXY": "http://proxy.internal:3128"}',
        "HONE_LAUNCHER__KUBERNETES__ACTIVE_DEADLINE_S=86400",
        "HONE_LAUNCHER__KUBERNETES__TTL_AFTER_FINISHED_S=600",
    ]
    merge = {"configMapGenerator": [{"name": "hone-api-config", "behavior": "merge", "literals": literals}]}
    docs = kustomize(on_top_of("gpu", merge))
    for _, (job, _, _) in trainer_jobs(docs, monkeypatch):
        pod = job["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "mirror-pull"}]
        assert {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"} in pod["containers"][0]["env"]
        assert job["spec"]["activeDeadlineSeconds"] == 86400 and job["spec"]["ttlSecondsAfterFinished"] == 600


def test_registry_credentials_reach_every_hone_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render("gpu", "registry-credentials")
    accounts = {d["metadata"]["name"]: d for d in find(docs, "ServiceAccount")}
    used = {pod["serviceAccountName"] for _, _, pod in pods(docs)}
    used |= {
        job["spec"]["template"]["spec"]["serviceAccountName"] for _, (job, _, _) in trainer_jobs(docs, monkeypatch)
    }
    for name in used:
        assert accounts[name]["imagePullSecrets"] == [{"name": "hone-registry"}], name


def test_servicemonitors_scrape_the_api_and_each_vllm_replica_once() -> None:
    docs = render("gpu", "servicemonitor")
    services = find(docs, "Service")
    for monitor in find(docs, "ServiceMonitor"):
        selected = [s for s in services if _selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        assert len(selected) == len({tuple(sorted(s["spec"]["selector"].items())) for s in selected}) >= 1, monitor
        for endpoint in monitor["spec"]["endpoints"]:
            assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in selected)
    vllm = _pod_labels(docs, "hone-vllm")
    policies = [p["spec"] for p in find(docs, "NetworkPolicy") if _selects(p["spec"]["podSelector"], vllm)]
    assert any("namespaceSelector" in peer for p in policies for r in p.get("ingress", []) for peer in r["from"])


def test_keda_scales_vllm_on_waiting_requests() -> None:
    docs = render("gpu", "keda")
    for scaled in find(docs, "ScaledObject"):
        target = one(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        assert target["metadata"]["labels"]["app.kubernetes.io/name"] == "hone-vllm"
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "prometheus" and "vllm:num_requests_waiting" in trigger["metadata"]["query"]
        model = target["metadata"]["labels"]["hone.dev/base-model"]
        assert f'model_name="{model}"' in trigger["metadata"]["query"]
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        assert "replicas" not in target["spec"]  # the HPA's, not reset by every apply


def _prefix_match(prefix: str, path: str) -> bool:
    """Ingress ``Prefix`` / Gateway API ``PathPrefix``: element-wise, so /v1 never matches /v1x."""
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


ROUTED = ["/v1/models", "/v1/chat/completions", "/v1/fine_tuning/jobs"]
NEVER = ["/internal/v1/jobs/x/events", "/metrics", "/healthz", "/", "/v1x"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_exposes_only_v1_with_tls(overlay: str) -> None:
    docs = render(overlay, "ingress")
    (ingress,) = find(docs, "Ingress")
    hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
    prefixes = []
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in hosts
        for p in rule["http"]["paths"]:
            assert p["pathType"] == "Prefix" and p["backend"]["service"]["name"] == "hone-api"
            prefixes.append(p["path"])
    assert all(any(_prefix_match(p, path) for p in prefixes) for path in ROUTED)
    assert not any(_prefix_match(p, path) for p in prefixes for path in NEVER)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_route_exposes_only_v1_with_tls(overlay: str) -> None:
    docs = render(overlay, "gateway-api")
    (gateway,) = find(docs, "Gateway")
    (route,) = find(docs, "HTTPRoute")
    assert gateway["spec"]["gatewayClassName"]
    listeners = {lis["name"]: lis for lis in gateway["spec"]["listeners"]}
    for parent in route["spec"]["parentRefs"]:
        assert parent["name"] == gateway["metadata"]["name"]
        listener = listeners[parent["sectionName"]]
        assert listener["protocol"] == "HTTPS" and listener["tls"]["certificateRefs"]
    prefixes = []
    for rule in route["spec"]["rules"]:
        for backend in rule["backendRefs"]:
            service = one(docs, "Service", backend["name"])
            assert backend["port"] in {p["port"] for p in service["spec"]["ports"]}
        for match in rule["matches"]:
            assert match["path"]["type"] == "PathPrefix"
            prefixes.append(match["path"]["value"])
    assert all(any(_prefix_match(p, path) for p in prefixes) for path in ROUTED)
    assert not any(_prefix_match(p, path) for p in prefixes for path in NEVER)
