"""Runs each attempt as a Kubernetes ``batch/v1`` Job, with the official ``kubernetes`` client.

One Job per attempt, built from the catalog entry's ``training`` resources: GPU count and node
placement, ``torchrun --nproc-per-node`` for several GPUs, and for several nodes an Indexed Job
whose pods find each other through a headless Service. A preempted or evicted pod
(``DisruptionTarget``) is replaced without counting against the Job; the trainer's bad-input
exit code fails the Job at once; any other failure ends the attempt and the reconciler decides
about the next one. The attempt's spec (it carries the report token) lives in a Secret owned by
the Job, so it is garbage-collected with it. Pods run as non-root with a read-only root
filesystem, no capabilities, the RuntimeDefault seccomp profile, and no service-account token.

``poll`` reads a local cache kept current by a watch on the namespace's trainer Jobs: it lists
once, then watches from the list's resourceVersion, and re-lists when the server answers 410
Gone; it is level-triggered, so a restarted control plane converges from a fresh list.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import TYPE_CHECKING, Any, Self

from contract.spec import EXIT_PREEMPTED, FAIL_JOB_EXIT_CODES, JobSpec
from service.catalog.catalog import TrainingResources
from service.kube_informer import Informer
from service.launcher.base import AttemptState
from service.launcher.config import KubernetesLauncherConfig
from service.launcher.torchrun import RENDEZVOUS_PORT, Rendezvous, trainer_command

if TYPE_CHECKING:
    from service.config import Settings

log = logging.getLogger(__name__)
APP_LABEL = "hone-trainer"
LABEL_JOB, LABEL_PROJECT, LABEL_ATTEMPT = "hone.dev/job-id", "hone.dev/project", "hone.dev/attempt"
SPEC_DIR = "/etc/hone/spec"
SCRATCH = "/scratch"
TMP = "/tmp"
CA_BUNDLE_ENV = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")  # boto3, requests, Python's ssl


def job_name(job_id: str, attempt: int) -> str:
    """DNS-1123 names: ids are mixed-case, so the name carries a hash of the exact id."""
    return f"hone-{hashlib.sha256(job_id.encode()).hexdigest()[:16]}-a{attempt}"


def build(
    spec: JobSpec, res: TrainingResources, cfg: KubernetesLauncherConfig
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(Job, spec Secret, headless Service or None) as plain manifests."""
    place = res.kubernetes
    name = job_name(spec.job_id, spec.attempt)
    labels = {
        "app.kubernetes.io/name": APP_LABEL,
        "app.kubernetes.io/part-of": "hone",
        LABEL_JOB: spec.job_id,
        LABEL_PROJECT: spec.project,
        LABEL_ATTEMPT: str(spec.attempt),
    }
    job_labels = dict(labels)
    if cfg.kueue_queue:
        job_labels["kueue.x-k8s.io/queue-name"] = cfg.kueue_queue
    rendezvous = Rendezvous(res.nodes, "$(JOB_COMPLETION_INDEX)", f"{name}-0.{name}") if res.nodes > 1 else None
    command = trainer_command(
        "python", f"{SPEC_DIR}/spec.json", SCRATCH, nproc_per_node=max(res.gpus, 1), rendezvous=rendezvous
    )
    limits: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    if res.gpus:
        limits[place.gpu_resource] = str(res.gpus)
    fixed = {
        "HOME": SCRATCH,
        "TMPDIR": TMP,  # torchrun's mkdtemp and every tempfile user: the root filesystem is read-only
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    }
    if cfg.ca_bundle.enabled:
        fixed |= dict.fromkeys(CA_BUNDLE_ENV, cfg.ca_bundle.path)
    # one entry per name (server-side apply refuses duplicates): extra_env may override the defaults
    env = [{"name": k, "value": v} for k, v in {**fixed, **cfg.extra_env}.items()]
    container: dict[str, Any] = {
        "name": "trainer",
        "image": place.image or cfg.trainer_image,
        "command": command,
        "env": env,
        "resources": {"requests": dict(limits), "limits": limits},
        "volumeMounts": [
            {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
            {"name": "scratch", "mountPath": SCRATCH},
            {"name": "tmp", "mountPath": TMP},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    env_from: list[dict[str, Any]] = []
    if cfg.storage_config_map:
        env_from.append({"configMapRef": {"name": cfg.storage_config_map}})
    if cfg.storage_secret:
        env_from.append({"secretRef": {"name": cfg.storage_secret}})
    if cfg.env_config_map:
        env_from.append({"configMapRef": {"name": cfg.env_config_map, "optional": True}})
    if env_from:
        container["envFrom"] = env_from
    if cfg.models_pvc:
        container["volumeMounts"].append({"name": "models", "mountPath": "/models", "readOnly": True})
    if res.nodes > 1:
        container["ports"] = [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": cfg.service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": cfg.run_as_user,
            "runAsGroup": cfg.run_as_user,
            "fsGroup": cfg.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "spec", "secret": {"secretName": name, "defaultMode": 0o400}},
            {"name": "scratch", "emptyDir": {"sizeLimit": res.scratch}},
            {"name": "tmp", "emptyDir": {"sizeLimit": cfg.tmp_size}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": cfg.shm_size}},
        ],
    }
    if cfg.ca_bundle.enabled:
        ca = cfg.ca_bundle
        items = [{"key": ca.key, "path": ca.key}]
        source = (
            {"configMap": {"name": ca.config_map, "items": items}}
            if ca.config_map
            else {"secret": {"secretName": ca.secret, "items": items}}
        )
        pod_spec["volumes"].append({"name": "ca-bundle", **source})
        container["volumeMounts"].append({"name": "ca-bundle", "mountPath": ca.mount_dir, "readOnly": True})
    if cfg.models_pvc:
        pod_spec["volumes"].append(
            {"name": "models", "persistentVolumeClaim": {"claimName": cfg.models_pvc, "readOnly": True}}
        )
    if place.node_selector:
        pod_spec["nodeSelector"] = dict(place.node_selector)
    if place.tolerations:
        pod_spec["tolerations"] = list(place.tolerations)
    if cfg.runtime_class_name:
        pod_spec["runtimeClassName"] = cfg.runtime_class_name
    if cfg.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in cfg.image_pull_secrets]
    if res.nodes > 1:
        pod_spec["subdomain"] = name
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,  # a failed pod ends the attempt; the reconciler relaunches from a checkpoint
        "activeDeadlineSeconds": cfg.active_deadline_s,
        "ttlSecondsAfterFinished": cfg.ttl_after_finished_s,
        "podFailurePolicy": {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "trainer", "operator": "In", "values": list(FAIL_JOB_EXIT_CODES)},
                },
            ]
        },
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if res.nodes > 1:
        # All ranks fail together: backoffLimit 0 fails the whole Job on the first failed pod (the
        # Job controller then terminates the other indexes' pods), so the surviving ranks never
        # wait for the dead one until the NCCL timeout. (backoffLimitPerIndex would fail only
        # that index and let the others run on.) A preempted or evicted rank cannot rejoin its
        # peers' running rendezvous either: it ends the attempt too, as a preemption (resumed
        # from the newest checkpoint, not counted as a failure), instead of being replaced.
        job_spec.update(completionMode="Indexed", completions=res.nodes, parallelism=res.nodes)
        job_spec["podFailurePolicy"]["rules"][0]["action"] = "FailJob"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": cfg.namespace, "labels": job_labels},
        "spec": job_spec,
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": cfg.namespace, "labels": labels},
        "stringData": {"spec.json": spec.model_dump_json()},
    }
    service = None
    if res.nodes > 1:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": cfg.namespace, "labels": labels},
            "spec": {
                "clusterIP": "None",
                "selector": {LABEL_JOB: spec.job_id, LABEL_ATTEMPT: str(spec.attempt)},
                "publishNotReadyAddresses": True,
                "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT}],
            },
        }
    return job, secret, service


_EXIT_CODE = re.compile(r"exit code (\d+)")


def state_of(job: dict[str, Any] | None) -> AttemptState:
    """A Job object (as a dict) -> the attempt's state."""
    if job is None:
        return AttemptState("missing")
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return AttemptState("succeeded", 0)
        if cond.get("type") == "Failed":
            reason, message = cond.get("reason", ""), cond.get("message", "")
            # A FailJob rule's message names the container's exit code; other failures do not.
            match = _EXIT_CODE.search(message) if reason == "PodFailurePolicy" else None
            code = int(match.group(1)) if match else 1
            if reason == "PodFailurePolicy" and "DisruptionTarget" in message:
                code = EXIT_PREEMPTED  # a rank of a multi-node attempt was preempted or evicted
            return AttemptState("failed", code, f"{reason}: {message}".strip())
    if (job.get("spec") or {}).get("suspend") or _condition(status, "Suspended"):
        # Created suspended, or suspended again (Kueue preempted it): no pod runs until admitted.
        return AttemptState("pending", detail="the Job is suspended: waiting for its queue (Kueue) to admit it")
    return AttemptState("running")


def _condition(status: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


class JobCache(Informer[dict[str, Any]]):
    """List-then-watch cache of the namespace's trainer Jobs (as dicts) by name."""

    def __init__(self, batch: Any, namespace: str) -> None:
        super().__init__(
            batch.list_namespaced_job,
            namespace,
            f"app.kubernetes.io/name={APP_LABEL}",
            sanitize=batch.api_client.sanitize_for_serialization,
            to_value=lambda raw: raw,
            what="trainer Jobs",
            log=log,
        )
        self.batch = batch


class KubernetesLauncher:
    def __init__(
        self,
        cfg: KubernetesLauncherConfig,
        *,
        api_client: Any = None,
        batch: Any = None,
        core: Any = None,
        start_watch: bool = True,
    ) -> None:
        """``batch``/``core`` default to the official client's BatchV1Api/CoreV1Api on
        ``api_client`` (in-cluster config, else the kubeconfig)."""
        from kubernetes import client, config

        if batch is None or core is None:
            if api_client is None:
                try:
                    config.load_incluster_config()
                except config.ConfigException:
                    config.load_kube_config()
                api_client = client.ApiClient()
            batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
        self.cfg = cfg
        self.batch, self.core = batch, core
        self.cache = JobCache(self.batch, cfg.namespace)
        if start_watch:
            threading.Thread(target=self.cache.run, name="hone-k8s-watch", daemon=True).start()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.launcher.kubernetes)

    def shutdown(self, stop_attempts: bool) -> None:
        """Stop watching. Attempts are Jobs the cluster keeps running: a restarted control plane
        finds them by their labels, so they are never stopped here."""
        self.cache.stop()

    def start(self, spec: JobSpec, resources: TrainingResources) -> None:
        from kubernetes.client.exceptions import ApiException

        job, secret, service = build(spec, resources, self.cfg)
        ns = self.cfg.namespace
        try:
            created = self.batch.create_namespaced_job(ns, job)
        except ApiException as e:
            if e.status != 409:  # 409: this attempt's Job exists already (start is idempotent)
                raise
            created = self.batch.read_namespaced_job(job["metadata"]["name"], ns)
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": created.metadata.name,
            "uid": created.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
        for obj, create in (
            (secret, self.core.create_namespaced_secret),
            (service, self.core.create_namespaced_service),
        ):
            if obj is None:
                continue
            obj["metadata"]["ownerReferences"] = [owner]
            try:
                create(ns, obj)
            except ApiException as e:
                if e.status != 409:
                    raise

    def poll(self, job_id: str, attempt: int) -> AttemptState:
        name = job_name(job_id, attempt)
        cached = self.cache.get(name) if self.cache.synced.is_set() else None
        if cached is not None:
            return state_of(cached)
        from kubernetes.client.exceptions import ApiException

        try:  # not (yet) in the cache: ask the API server
            return state_of(
                self.batch.api_client.sanitize_for_serialization(
                    self.batch.read_namespaced_job(name, self.cfg.namespace)
                )
            )
        except ApiException as e:
            if e.status == 404:
                return AttemptState("missing")
            raise

    def cancel(self, job_id: str, attempt: int) -> None:
        """Delete the attempt's Job while it runs. An ended Job is left alone: its status is the
        attempt's result, which the reconciler still reads."""
        from kubernetes.client.exceptions import ApiException

        if not self.poll(job_id, attempt).alive:
            return
        try:
            self.batch.delete_namespaced_job(
                job_name(job_id, attempt), self.cfg.namespace, propagation_policy="Background"
            )
        except ApiException as e:
            if e.status != 404:
                raise
