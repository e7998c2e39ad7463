"""Upstream discovery against a real cluster (KUBECONFIG; namespace ``HONE_K8S_TEST_NAMESPACE``,
default ``default``): a pod behind a headless Service labelled as the manifests label each base
model's ``hone-vllm-<model>-pods`` Service shows up as an upstream of that base model, through
the labels its EndpointSlice inherits from the Service, and is gone once the pod is deleted. This
checks on a real API server what the unit tests (tests/unit/test_upstream_discovery.py) assume
of the EndpointSlice controller."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable

import pytest

from service.catalog.catalog import BaseModelEntry
from service.gateway.config import GatewaySettings
from service.gateway.discovery import EndpointSliceUpstreams
from tests.harness.waiting import wait_until

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a cluster (KUBECONFIG)"),
]


def _until(what: str, check: Callable[[], bool], timeout: float = 180) -> None:
    wait_until(check, what, timeout_s=timeout, every_s=1)


def test_a_ready_pod_behind_the_headless_service_is_an_upstream() -> None:
    from kubernetes import client, config

    config.load_kube_config()
    api = client.ApiClient()
    core = client.CoreV1Api(api)
    ns = os.environ.get("HONE_K8S_TEST_NAMESPACE", "default")
    base = f"discovery-{uuid.uuid4().hex[:8]}"
    labels = {"app.kubernetes.io/name": "hone-vllm", "hone.dev/base-model": base}
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": f"hone-vllm-{base}-pods", "labels": labels},
            "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "http", "port": 8000}]},
        },
    )
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": f"{base}-0", "labels": labels},
            "spec": {
                "containers": [
                    {
                        "name": "vllm",
                        "image": "busybox:1.36",
                        "command": ["sleep", "600"],
                        "ports": [{"name": "http", "containerPort": 8000}],
                    }
                ],
                "terminationGracePeriodSeconds": 1,
            },
        },
    )
    g = GatewaySettings(discovery="kubernetes", namespace=ns)
    cache = EndpointSliceUpstreams(client.DiscoveryV1Api(api), ns, g.selector, g.model_label, g.port_name)
    threading.Thread(target=cache.run, daemon=True).start()
    entry = BaseModelEntry(name=base, source="/models/x")
    try:
        _until("the pod to be discovered", lambda: len(cache.upstreams(entry)) == 1)
        pod_ip = core.read_namespaced_pod(f"{base}-0", ns).status.pod_ip
        assert cache.upstreams(entry) == [f"http://{pod_ip}:8000"]
        core.delete_namespaced_pod(f"{base}-0", ns)
        _until("the deleted pod to go", lambda: cache.upstreams(entry) == [])
    finally:
        cache.close()
        for delete, name in (
            (core.delete_namespaced_pod, f"{base}-0"),
            (core.delete_namespaced_service, f"hone-vllm-{base}-pods"),
        ):
            try:
                delete(name, ns)
            except client.exceptions.ApiException:
                pass
