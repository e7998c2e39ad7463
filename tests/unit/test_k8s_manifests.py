"""Every object that ``kubectl kustomize`` renders from k8s/overlays/{gpu,dev} validates against
the Kubernetes schemas of the targeted version (kubernetes-validate, strict: unknown fields are
errors), and the workloads carry the security settings the deploy guide promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S_VERSION = "1.31.0"
ROOT = Path(__file__).resolve().parents[2] / "k8s"
CRD_KINDS = {"ServiceMonitor"}  # custom resources: no schema in kubernetes-validate

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")


def render(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "overlays" / overlay)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("overlay", ["gpu", "dev"])
def test_rendered_manifests_validate(overlay: str) -> None:
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
    } <= kinds
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"].get("namespace", "hone") == "hone" or doc["kind"] == "Namespace"


def _workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")}


@pytest.mark.parametrize("overlay", ["gpu", "dev"])
def test_workloads_are_locked_down(overlay: str) -> None:
    for name, w in _workloads(render(overlay)).items():
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}, (
                name,
                c["name"],
            )
            if not name.startswith("postgres"):  # PostgreSQL writes its lock files under / at start
                assert sc.get("readOnlyRootFilesystem") is True, (name, c["name"])
        if name != "hone-api":  # only the API talks to the Kubernetes API
            assert pod["automountServiceAccountToken"] is False, name


def test_api_deployment_and_rbac() -> None:
    docs = render("gpu")
    api = _workloads(docs)["hone-api"]
    assert api["spec"]["replicas"] == 2
    c = api["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["limits"] and {"name": "HONE_LAUNCHER__BACKEND", "value": "kubernetes"} in c["env"]
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    (role,) = [d for d in docs if d["kind"] == "Role"]
    granted = {
        (g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert granted == {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("", "pods"): {"get", "list"},
        ("", "pods/log"): {"get"},
        ("", "secrets"): {"create", "delete"},
        ("", "services"): {"create", "delete"},
    }
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_network_policies() -> None:
    policies = {d["metadata"]["name"]: d["spec"] for d in render("gpu") if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    vllm_from = policies["hone-vllm"]["ingress"][0]["from"]
    assert vllm_from == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "hone-api"}}}]  # only the API
    trainer_to = [rule.get("to") for rule in policies["hone-trainer"]["egress"]]
    assert [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "hone-api"}}}] in trainer_to


def test_vllm_deployment_serves_with_the_plugin() -> None:
    vllm = next(w for n, w in _workloads(render("gpu")).items() if n.startswith("hone-vllm"))
    c = vllm["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VLLM_PLUGINS"] == "hone" and env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "--enable-lora" in c["args"] and c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "adapter-cache", "mountPath": "/adapter-cache"} in c["volumeMounts"]
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
