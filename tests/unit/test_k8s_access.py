"""Who may do what on a real cluster, proven on the rendered manifests (tests/harness/k8s.py)
and the trainer Jobs the launcher builds from them, without a cluster:

- the API's RBAC verbs are exactly the Kubernetes calls the code makes;
- NetworkPolicies let the API, vLLM and trainers reach the object store on its configured port
  (and only the API reach vLLM), and the object store is configured in one place.

Without kubectl the tests skip, except under CI=true where they fail: a skip must not hide them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.harness.k8s import (
    CASE_IDS,
    CASES,
    NAMESPACE,
    OVERLAYS,
    REPO,
    api_container,
    config_map,
    containers,
    find,
    kustomize,
    on_top_of,
    one,
    pod_labels,
    pods,
    render,
    selects,
    trainer_jobs,
)

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


def _peer_ok(peers: list[dict[str, Any]] | None, labels: dict[str, str] | None) -> bool:
    """Does a rule's to/from list admit a pod with ``labels`` in this namespace (None: an
    address outside the cluster)?"""
    if not peers:
        return True
    for peer in peers:
        if labels is None and "ipBlock" in peer:
            return True
        if labels is not None and "podSelector" in peer and "namespaceSelector" not in peer:
            if selects(peer["podSelector"], labels):
                return True
    return False


def _port_ok(ports: list[dict[str, Any]] | None, port: int) -> bool:
    return not ports or any(p.get("protocol", "TCP") == "TCP" and p.get("port") in (port, None) for p in ports)


def allowed(docs: list[dict[str, Any]], src: dict[str, str], dst: dict[str, str] | None, port: int) -> bool:
    """NetworkPolicy semantics (additive, per direction) for TCP from ``src`` to ``dst`` pods
    (None: outside the cluster) on ``port``."""
    policies = [d["spec"] for d in find(docs, "NetworkPolicy")]

    def permits(direction: str, me: dict[str, str], peer: dict[str, str] | None) -> bool:
        mine = [p for p in policies if selects(p["podSelector"], me) and direction in p.get("policyTypes", [])]
        key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        return not mine or any(
            _peer_ok(rule.get(peers), peer) and _port_ok(rule.get("ports"), port)
            for p in mine
            for rule in p.get(key, [])
        )

    return permits("Egress", src, dst) and (dst is None or permits("Ingress", dst, src))


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
            if selects({"matchLabels": service["spec"]["selector"]}, m.get("labels", {}))
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
    for src in (pod_labels(docs, "hone-api"), pod_labels(docs, "hone-vllm"), trainer):
        assert allowed(docs, src, dst, port), (src["app.kubernetes.io/name"], dst, port)
    api, vllm = pod_labels(docs, "hone-api"), pod_labels(docs, "hone-vllm")
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
        assert allowed(docs, pod_labels(docs, app), None, port), app
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
