"""The Kubernetes launcher without a cluster: every Job it builds validates against the
Kubernetes schemas of the targeted version (kubernetes-validate, strict) and carries the
security settings; Job status maps to attempt states; the watch cache re-lists on 410.
(The same flow against a real cluster: tests/k8s, when KUBECONFIG is set.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest

from contract.spec import EXIT_BAD_INPUT, EXIT_FATAL, EXIT_PREEMPTED, JobSpec
from service.catalog.catalog import KubernetesPlacement, TrainingResources
from service.config import Settings
from service.launcher.config import TRAINER_UID, CABundle, KubernetesLauncherConfig
from service.launcher.kubernetes import JobCache, KubernetesLauncher, build, job_name, state_of
from tests.fakes.kubernetes import FakeKubernetes
from tests.harness.records import job_spec

K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())  # the oldest supported and the newest schema
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
        for version in K8S_VERSIONS:
            if obj is not None:
                kubernetes_validate.validate(obj, version, strict=True)
    assert (
        job["metadata"]["name"] == job_name("ftjob-AbCdEfGhIjKlMnOpQrStUvWx", 2) and len(job["metadata"]["name"]) <= 63
    )
    labels = job["metadata"]["labels"]
    assert labels["hone.dev/job-id"] == "ftjob-AbCdEfGhIjKlMnOpQrStUvWx" and labels["hone.dev/project"] == "proj_x"
    assert labels["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0
    rules = spec["podFailurePolicy"]["rules"]
    on_disruption = "FailJob" if RESOURCES[base].nodes > 1 else "Ignore"  # a lost rank cannot rejoin
    assert rules[0] == {"action": on_disruption, "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
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
    assert c["envFrom"] == [
        {"configMapRef": {"name": "hone-storage"}},
        {"secretRef": {"name": "hone-trainer-storage"}},
    ]
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
    assert state_of(cache.items["a"]).phase == "succeeded" and state_of(cache.items["b"]).phase == "running"
    gone = FakeWatch([{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}])
    cache.watch_once(gone)
    assert cache.resource_version is None
    batch.jobs = {"b": FakeBatch._job("b", "9", "Failed")}
    batch.version = "9"
    cache.watch_once(FakeWatch([{"type": "DELETED", "object": FakeBatch._job("b", "10")}]))
    assert batch.lists == 2 and "a" not in cache.items  # the re-list dropped what is gone
    assert "b" not in cache.items and cache.resource_version == "10"


class GoneWatch:
    """A watch whose call fails with 410 Gone, as the client raises it."""

    def stream(self, fn: Any, namespace: str, **kw: Any):  # type: ignore[no-untyped-def]
        from kubernetes.client.exceptions import ApiException

        raise ApiException(status=410, reason="Gone")
        yield


def test_watch_cache_relists_on_an_api_exception_410_and_raises_on_other_errors() -> None:
    batch = FakeBatch()
    cache = JobCache(batch, "hone")
    cache.watch_once(GoneWatch())
    assert batch.lists == 1 and cache.resource_version is None  # the next watch lists again
    cache.watch_once(FakeWatch([]))
    assert batch.lists == 2 and cache.resource_version == "5"
    # any other ERROR event ends the watch: run() logs it and starts over from a fresh list
    with pytest.raises(RuntimeError, match="watching trainer Jobs: forbidden"):
        cache.watch_once(FakeWatch([{"type": "ERROR", "object": {"code": 403, "message": "forbidden"}}]))


def _mounts(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> the volume mounted there (with the mount's readOnly)."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {
        m["mountPath"]: {**volumes[m["name"]], "readOnly": m.get("readOnly", False)} for m in container["volumeMounts"]
    }


@pytest.mark.parametrize("base", ["llama-8b", "llama-405b"])
def test_trainer_pods_have_a_writable_tmp_and_run_as_the_images_user(base: str) -> None:
    """Finding 3: under readOnlyRootFilesystem, torchrun's mkdtemp needs a writable TMPDIR; the
    pods run as the uid the Dockerfile creates (10001), not 1000."""
    job, _, _ = build(_spec(base), RESOURCES[base], KubernetesLauncherConfig())
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    mounts = _mounts(c, pod)
    assert env["TMPDIR"] == "/tmp" and "emptyDir" in mounts["/tmp"] and not mounts["/tmp"]["readOnly"]
    assert "emptyDir" in mounts[env["HOME"]] and not mounts[env["HOME"]]["readOnly"]
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    uids = set(re.findall(r"useradd --uid (\d+)", dockerfile))
    assert uids == {str(TRAINER_UID)}  # one user in every image: the one trainer pods run as
    sc = pod["securityContext"]
    assert sc["runAsUser"] == sc["runAsGroup"] == sc["fsGroup"] == TRAINER_UID


def test_air_gapped_settings_reach_the_trainer_pod() -> None:
    """Finding 6: pull secrets, extra env (from the environment, as an operator sets them), a CA
    bundle for on-prem S3, deadlines and TTL, each configurable and each in the built Job."""
    env = {
        "HONE_LAUNCHER__BACKEND": "kubernetes",
        "HONE_LAUNCHER__KUBERNETES__TRAINER_IMAGE": "registry.corp/hone/trainer:0.1.0",
        "HONE_LAUNCHER__KUBERNETES__IMAGE_PULL_SECRETS": "corp-registry, corp-mirror",
        "HONE_LAUNCHER__KUBERNETES__EXTRA_ENV": '{"HTTPS_PROXY": "http://proxy.corp:3128", "HF_HUB_OFFLINE": "1"}',
        "HONE_LAUNCHER__KUBERNETES__ENV_CONFIG_MAP": "hone-trainer-env",
        "HONE_LAUNCHER__KUBERNETES__CA_BUNDLE__CONFIG_MAP": "corp-ca",
        "HONE_LAUNCHER__KUBERNETES__CA_BUNDLE__KEY": "bundle.pem",
        "HONE_LAUNCHER__KUBERNETES__ACTIVE_DEADLINE_S": "86400",
        "HONE_LAUNCHER__KUBERNETES__TTL_AFTER_FINISHED_S": "600",
        "HONE_LAUNCHER__KUBERNETES__RUNTIME_CLASS_NAME": "nvidia",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        cfg = Settings().launcher.kubernetes
    job, _, _ = build(_spec(), RESOURCES["llama-8b"], cfg)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "registry.corp/hone/trainer:0.1.0"
    assert pod["imagePullSecrets"] == [{"name": "corp-registry"}, {"name": "corp-mirror"}]
    assert pod["runtimeClassName"] == "nvidia"
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names))  # server-side apply refuses duplicate env names
    values = {e["name"]: e["value"] for e in c["env"]}
    assert values["HTTPS_PROXY"] == "http://proxy.corp:3128"
    for name in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        assert values[name] == "/etc/hone/ca/bundle.pem"
    ca = _mounts(c, pod)["/etc/hone/ca"]
    assert ca["readOnly"] and ca["configMap"] == {
        "name": "corp-ca",
        "items": [{"key": "bundle.pem", "path": "bundle.pem"}],
    }
    assert {"configMapRef": {"name": "hone-trainer-env", "optional": True}} in c["envFrom"]
    assert spec["activeDeadlineSeconds"] == 86400 and spec["ttlSecondsAfterFinished"] == 600

    from_secret = KubernetesLauncherConfig(ca_bundle=CABundle(secret="corp-ca"))
    job, _, _ = build(_spec(), RESOURCES["llama-8b"], from_secret)
    pod = job["spec"]["template"]["spec"]
    assert _mounts(pod["containers"][0], pod)["/etc/hone/ca"]["secret"]["secretName"] == "corp-ca"
    with pytest.raises(ValueError, match="not both"):
        CABundle(secret="a", config_map="b")


def test_a_failed_rank_fails_the_whole_multi_node_job() -> None:
    """Finding 4: one rank of a multi-node attempt dies -> the Job fails at once and the other
    ranks' pods are stopped (the FAKE Job controller below follows the documented Job API
    semantics: backoffLimit counts failed pods across indexes; backoffLimitPerIndex without
    maxFailedIndexes fails only the index and lets the others run)."""
    cluster = FakeKubernetes()
    cfg = KubernetesLauncherConfig()
    launcher = KubernetesLauncher(cfg, batch=cluster.batch, core=cluster.core, start_watch=False)
    spec = _spec("llama-405b")
    launcher.start(spec, RESOURCES["llama-405b"])
    name = job_name(spec.job_id, spec.attempt)
    assert launcher.poll(spec.job_id, spec.attempt).phase == "running"
    cluster.fail_index("hone", name, index=2, exit_code=1)  # e.g. an OOM-killed rank
    state = launcher.poll(spec.job_id, spec.attempt)
    assert state.phase == "failed" and "BackoffLimitExceeded" in state.detail
    assert cluster.objects[("Job", "hone", name)]["status"]["active"] == 0  # the surviving ranks were stopped

    # A preempted rank cannot rejoin the others' rendezvous: the attempt ends as a preemption
    # (EXIT_PREEMPTED: resumed from the newest checkpoint, not counted as a failure).
    again = _spec("llama-405b", attempt=3)
    launcher.start(again, RESOURCES["llama-405b"])
    cluster.disrupt_index("hone", job_name(again.job_id, again.attempt), index=1)
    state = launcher.poll(again.job_id, again.attempt)
    assert (state.phase, state.exit_code) == ("failed", EXIT_PREEMPTED)
    # One node: the evicted pod is replaced, the attempt runs on.
    single = _spec("llama-8b", attempt=4)
    launcher.start(single, RESOURCES["llama-8b"])
    cluster.disrupt_index("hone", job_name(single.job_id, single.attempt), index=0)
    assert launcher.poll(single.job_id, single.attempt).phase == "running"


def test_a_suspended_job_is_pending_until_admitted() -> None:
    """Finding 7: a Job Kueue has not admitted (spec.suspend, condition Suspended) is pending, not running."""
    suspended = {"spec": {"suspend": True}, "status": {}}
    assert state_of(suspended).phase == "pending" and state_of(suspended).alive
    preempted = {
        "spec": {"suspend": False},
        "status": {"conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended"}]},
    }
    assert state_of(preempted).phase == "pending"
    admitted = {
        "spec": {"suspend": False},
        "status": {"active": 1, "conditions": [{"type": "Suspended", "status": "False", "reason": "JobResumed"}]},
    }
    assert state_of(admitted).phase == "running"
    ended = {"spec": {"suspend": True}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert state_of(ended).phase == "failed"  # a deadline ends a suspended Job too
