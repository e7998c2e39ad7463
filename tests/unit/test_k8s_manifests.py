"""Every object that ``kubectl kustomize`` renders from k8s/overlays/{gpu,dev}, alone and with each
optional component, validates against the Kubernetes schemas of the oldest supported version and
the newest one kubernetes-validate ships (strict: unknown fields are errors), and the workloads
carry the security settings the deploy guide promises. What the objects mean together (paths,
images, RBAC, network) is tests/unit/test_k8s_{pods,images,access,serving}.py."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.harness.k8s import BUILTIN_API_VERSIONS, CASE_IDS, CASES, OVERLAYS, render

K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_rendered_manifests_validate(overlay: str, component: str | None) -> None:
    docs = render(overlay, component)
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PersistentVolumeClaim",
    } <= kinds
    for doc in docs:
        if doc["apiVersion"] not in BUILTIN_API_VERSIONS:
            continue  # custom resources: tests/unit/test_k8s_serving.py checks their fields
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def _workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")}


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_workloads_are_locked_down(overlay: str, component: str | None) -> None:
    for name, w in _workloads(render(overlay, component)).items():
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}, (
                name,
                c["name"],
            )
            assert c["resources"]["limits"], (name, c["name"])
            if not name.startswith("postgres"):  # PostgreSQL writes its lock files under / at start
                assert sc.get("readOnlyRootFilesystem") is True, (name, c["name"])
        if name != "hone-api":  # only the API talks to the Kubernetes API
            assert pod["automountServiceAccountToken"] is False, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_deployment(overlay: str) -> None:
    docs = render(overlay)
    api = _workloads(docs)["hone-api"]
    assert api["spec"]["replicas"] == (2 if overlay == "gpu" else 1)
    c = api["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "hone-api"]
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": api["spec"]["selector"]}


def test_network_policies() -> None:
    policies = {d["metadata"]["name"]: d["spec"] for d in render("gpu") if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    vllm_from = policies["hone-vllm"]["ingress"][0]["from"]
    assert vllm_from == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "hone-api"}}}]  # only the API
    assert "egress" not in policies["hone-vllm"]  # vLLM reaches only DNS and the object store
    trainer_to = [rule.get("to") for rule in policies["hone-trainer"]["egress"]]
    assert [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "hone-api"}}}] in trainer_to


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_vllm_deployment_serves_with_the_plugin(overlay: str) -> None:
    (vllm,) = [w for n, w in _workloads(render(overlay)).items() if n.startswith("hone-vllm")]
    c = vllm["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VLLM_PLUGINS"] == "hone" and env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "--enable-lora" in c["args"]
    assert c["resources"]["limits"].get("nvidia.com/gpu") == ("1" if overlay == "gpu" else None)
    assert {"name": "adapter-cache", "mountPath": "/adapter-cache"} in c["volumeMounts"]
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
