"""The Kubernetes launcher without a cluster: every Job it builds validates against the
Kubernetes schemas of the targeted version (kubernetes-validate, strict) and carries the
security settings; Job status maps to attempt states; the watch cache re-lists on 410.
(The same flow against a real cluster: tests/k8s, when KUBECONFIG is set.)"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest

from contract.spec import EXIT_BAD_INPUT, EXIT_FATAL, EXIT_PREEMPTED, JobSpec
from service.catalog.catalog import KubernetesPlacement, TrainingResources
from service.launcher.config import KubernetesLauncherConfig
from service.launcher.kubernetes import JobCache, build, job_name, state_of
from tests.harness.records import job_spec

K8S_VERSION = "1.31.0"
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
GPU_TAINT = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def _spec(base: str = "llama-8b", attempt: int = 2) -> JobSpec:
    return job_spec(
        attempt=attempt,
        base_model=base,
        base_model_source="/models/llama",
        fine_tuned_model="ft:llama-8b:acme::AbCdEfGh",
    )


ON_H100 = KubernetesPlacement(node_selector=H100, tolerations=GPU_TAINT)
RESOURCES = {
    "llama-8b": TrainingResources(gpus=1, kubernetes=ON_H100),
    "llama-70b": TrainingResources(gpus=8, kubernetes=ON_H100),
    "llama-405b": TrainingResources(gpus=8, nodes=4),
}


@pytest.mark.parametrize("base", ["llama-8b", "llama-70b", "llama-405b"])
def test_built_objects_validate_and_are_locked_down(base: str) -> None:
    cfg = KubernetesLauncherConfig(kueue_queue="gpu-queue")
    job, secret, service = build(_spec(base), RESOURCES[base], cfg)
    for obj in (job, secret, service):
        if obj is not None:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert (
        job["metadata"]["name"] == job_name("ftjob-AbCdEfGhIjKlMnOpQrStUvWx", 2) and len(job["metadata"]["name"]) <= 63
    )
    labels = job["metadata"]["labels"]
    assert labels["hone.dev/job-id"] == "ftjob-AbCdEfGhIjKlMnOpQrStUvWx" and labels["hone.dev/project"] == "proj_x"
    assert labels["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [
        EXIT_BAD_INPUT,
        EXIT_FATAL,
        EXIT_PREEMPTED,
    ]
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"
    }
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert c["envFrom"] == [{"secretRef": {"name": "hone-trainer-storage"}}]
    assert "secret-token" not in json.dumps(job)  # the token lives only in the Secret
    assert json.loads(secret["stringData"]["spec.json"])["report_token"] == "secret-token"
    assert {"name": "spec", "secret": {"secretName": job["metadata"]["name"], "defaultMode": 0o400}} in pod["volumes"]
    gpus = RESOURCES[base].gpus
    assert c["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
    if base == "llama-8b":
        assert c["command"][:3] == ["python", "-m", "trainer"] and pod["nodeSelector"] == H100
        assert pod["tolerations"] == GPU_TAINT and service is None
    if base == "llama-70b":
        assert "--nproc-per-node=8" in c["command"] and "--standalone" in c["command"]
    if base == "llama-405b":
        assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 4
        assert pod["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"  # type: ignore[index]
        assert "--node-rank=$(JOB_COMPLETION_INDEX)" in c["command"] and "--nnodes=4" in c["command"]


def test_job_status_to_attempt_state() -> None:
    assert state_of(None).phase == "missing"
    assert state_of({"status": {"active": 1}}).phase == "running"
    assert state_of({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}).phase == "succeeded"
    failed = state_of(
        {
            "status": {
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                    }
                ]
            }
        }
    )
    assert (failed.phase, failed.exit_code) == ("failed", 1) and "BackoffLimitExceeded" in failed.detail
    bad = state_of(
        {
            "status": {
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "PodFailurePolicy",
                        "message": f"Container trainer for pod x failed with exit code {EXIT_BAD_INPUT} "
                        "matching FailJob rule at index 1",
                    }
                ]
            }
        }
    )
    assert bad.exit_code == EXIT_BAD_INPUT


class FakeBatch:
    """A FAKE BatchV1Api exposing only what JobCache calls (list + the watch stream source)."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {"a": self._job("a", "5")}
        self.version = "5"
        self.lists = 0
        self.api_client = SimpleNamespace(sanitize_for_serialization=lambda o: o)

    @staticmethod
    def _job(name: str, rv: str, cond: str | None = None) -> dict[str, Any]:
        status = {"conditions": [{"type": cond, "status": "True"}]} if cond else {"active": 1}
        return {"metadata": {"name": name, "resourceVersion": rv}, "status": status}

    def list_namespaced_job(self, namespace: str, **kw: Any) -> Any:
        self.lists += 1
        return SimpleNamespace(items=list(self.jobs.values()), metadata=SimpleNamespace(resource_version=self.version))


class FakeWatch:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.seen_rv: list[str | None] = []

    def stream(self, fn: Any, namespace: str, **kw: Any):  # type: ignore[no-untyped-def]
        self.seen_rv.append(kw.get("resource_version"))
        yield from self.events


def test_watch_cache_follows_events_and_relists_on_410() -> None:
    batch = FakeBatch()
    cache = JobCache(batch, "hone")
    w = FakeWatch(
        [
            {"type": "MODIFIED", "object": FakeBatch._job("a", "6", "Complete")},
            {"type": "ADDED", "object": FakeBatch._job("b", "7")},
        ]
    )
    cache.watch_once(w)
    assert batch.lists == 1 and w.seen_rv == ["5"] and cache.resource_version == "7"
    assert state_of(cache.jobs["a"]).phase == "succeeded" and state_of(cache.jobs["b"]).phase == "running"
    gone = FakeWatch([{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}])
    cache.watch_once(gone)
    assert cache.resource_version is None
    batch.jobs = {"b": FakeBatch._job("b", "9", "Failed")}
    batch.version = "9"
    cache.watch_once(FakeWatch([{"type": "DELETED", "object": FakeBatch._job("b", "10")}]))
    assert batch.lists == 2 and "a" not in cache.jobs  # the re-list dropped what is gone
    assert "b" not in cache.jobs and cache.resource_version == "10"
