"""A FAKE Kubernetes API for launcher tests: an in-memory stand-in for the few calls of the official
``kubernetes`` client that ``service.launcher.kubernetes`` makes, with no cluster and no HTTP.

It emulates, for namespaced Jobs, Secrets and Services:

* the API server: ``create_*`` stores a copy of the manifest, assigns ``uid``,
  ``resourceVersion`` and ``creationTimestamp``, and answers 409 Conflict for a name that exists
  (and 400 when the body's namespace is not the request's); ``read_namespaced_job`` and
  ``delete_namespaced_job`` answer 404 Not Found for a name that does not; ``list_namespaced_job``
  filters by equality label selectors. Errors are the client's own ``ApiException`` with a
  ``Status`` body. Objects come back as attribute views (``job.metadata.uid``,
  ``listing.metadata.resource_version``) the way the client's models read, and
  ``api_client.sanitize_for_serialization`` turns them back into plain camelCase dicts;
* the garbage collector: deleting a Job deletes the objects whose ``ownerReferences`` name its uid
  (the attempt's spec Secret and headless Service);
* the Job controller, driven by the test in place of a pod actually running: a new Job is
  ``active``; ``FakeKubernetes.finish_job(namespace, name, exit_code)`` ends it the way the
  controller does for ``backoffLimit: 0``: exit 0 sets the ``Complete`` condition; an exit code
  matching a ``FailJob`` rule of the Job's ``podFailurePolicy`` sets ``FailureTarget`` and
  ``Failed`` with reason ``PodFailurePolicy``; any other code sets ``Failed`` with reason
  ``BackoffLimitExceeded``. ``fail_index`` fails one index of an Indexed Job under
  ``backoffLimit`` or ``backoffLimitPerIndex``/``maxFailedIndexes``; ``disrupt_index`` preempts
  one pod, decided by the ``podFailurePolicy`` rule on ``DisruptionTarget``;
* with ``FakeKubernetes(kueue=True)``, Kueue: a Job with a queue label is created suspended (its
  webhook sets ``spec.suspend``; the Job controller sets the ``Suspended`` condition) and runs
  once the test calls ``admit_job``.

Not emulated: schema validation (tests/unit/test_k8s_launcher.py validates the built objects),
watches (construct ``KubernetesLauncher(..., start_watch=False)``, or drive its ``JobCache`` with
``relist``), pods, and everything else.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import uuid
from typing import Any

from kubernetes.client.exceptions import ApiException

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
_REASONS = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}


def _error(status: int, kind: str, name: str, message: str) -> ApiException:
    reason = _REASONS[status]
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason.replace(" ", ""),
        "details": {"name": name, "kind": kind},
        "code": status,
    }
    return ApiException(status=status, reason=reason, body=json.dumps(body))


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.title() for word in rest)


class KubeObject:
    """An attribute view of a stored object, read like the client's models: ``obj.metadata.resource_version``
    reads ``metadata.resourceVersion``. Absent fields read as None, as unset model fields do."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return _view(self._raw.get(_camel(attr)))

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._raw)


def _view(value: Any) -> Any:
    if isinstance(value, dict):
        return KubeObject(value)
    if isinstance(value, list):
        return [_view(v) for v in value]
    return value


class FakeApiClient:
    @staticmethod
    def sanitize_for_serialization(obj: Any) -> Any:
        if isinstance(obj, KubeObject):
            return obj.to_dict()
        if isinstance(obj, list | tuple):
            return [FakeApiClient.sanitize_for_serialization(o) for o in obj]
        if isinstance(obj, dict):
            return {k: FakeApiClient.sanitize_for_serialization(v) for k, v in obj.items()}
        return copy.deepcopy(obj)


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.lstrip("=").strip():
            return False
    return True


class FakeKubernetes:
    """The in-memory cluster behind ``batch`` (a fake BatchV1Api) and ``core`` (a fake CoreV1Api)."""

    def __init__(self, *, kueue: bool = False) -> None:
        """``kueue``: Kueue's admission webhook is installed: a Job labelled with a queue is
        created suspended and waits for ``admit_job``."""
        self.kueue = kueue
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, namespace, name) -> object
        self.created: list[tuple[str, str, str]] = []  # every successful create, in order
        self.api_client = FakeApiClient()
        self.batch = FakeBatchV1Api(self)
        self.core = FakeCoreV1Api(self)
        self._versions = itertools.count(1)
        self._lock = threading.Lock()

    # the API server
    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> KubeObject:
        obj = copy.deepcopy(FakeApiClient.sanitize_for_serialization(body))
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        if meta.setdefault("namespace", namespace) != namespace:
            raise _error(
                400, kind, name, "the namespace of the provided object does not match the namespace sent on the request"
            )
        with self._lock:
            key = (kind, namespace, name)
            if key in self.objects:
                raise _error(409, kind, name, f'{kind.lower()}s "{name}" already exists')
            meta.update(
                uid=str(uuid.uuid4()),
                resourceVersion=str(next(self._versions)),
                creationTimestamp="2024-01-01T00:00:00Z",
            )
            if kind == "Job":
                if self.kueue and KUEUE_QUEUE_LABEL in (meta.get("labels") or {}):
                    obj["spec"]["suspend"] = True  # Kueue's admission webhook
                if obj["spec"].get("suspend"):
                    obj["status"] = {"conditions": [_condition("Suspended", "JobSuspended", "Job suspended")]}
                else:
                    obj["status"] = {"active": obj["spec"].get("parallelism", 1), "startTime": "2024-01-01T00:00:00Z"}
            self.objects[key] = obj
            self.created.append(key)
            return KubeObject(copy.deepcopy(obj))

    def read(self, kind: str, namespace: str, name: str) -> KubeObject:
        with self._lock:
            obj = self.objects.get((kind, namespace, name))
            if obj is None:
                raise _error(404, kind, name, f'{kind.lower()}s "{name}" not found')
            return KubeObject(copy.deepcopy(obj))

    def list(self, kind: str, namespace: str, label_selector: str | None = None) -> KubeObject:
        with self._lock:
            items = [
                copy.deepcopy(o)
                for (k, ns, _), o in sorted(self.objects.items())
                if k == kind and ns == namespace and _matches(o["metadata"].get("labels") or {}, label_selector)
            ]
            version = str(next(self._versions))
        return KubeObject({"kind": f"{kind}List", "items": items, "metadata": {"resourceVersion": version}})

    def delete(self, kind: str, namespace: str, name: str) -> KubeObject:
        with self._lock:
            obj = self.objects.pop((kind, namespace, name), None)
            if obj is None:
                raise _error(404, kind, name, f'{kind.lower()}s "{name}" not found')
            self._collect_garbage(obj["metadata"]["uid"])
        return KubeObject(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Success",
                "details": {"name": name, "kind": kind.lower() + "s", "uid": obj["metadata"]["uid"]},
            }
        )

    def _collect_garbage(self, owner_uid: str) -> None:
        for key, obj in list(self.objects.items()):
            if any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or []):
                del self.objects[key]
                self._collect_garbage(obj["metadata"]["uid"])

    # the Job controller
    def finish_job(self, namespace: str, name: str, exit_code: int) -> None:
        """The Job's (single) pod exited with ``exit_code``: end the Job as its controller would."""
        with self._lock:
            job = self.objects[("Job", namespace, name)]
            status = job["status"]
            if any(c["type"] in ("Complete", "Failed") for c in status.get("conditions") or []):
                return  # already ended: the controller leaves a finished Job alone
            status["active"] = 0
            if exit_code == 0:
                status.update(succeeded=1, completionTime="2024-01-01T00:01:00Z")
                status["conditions"] = [_condition("Complete", "", "")]
            else:
                status["failed"] = 1
                rule = _fail_job_rule(job, exit_code)
                if rule is not None:
                    message = (
                        f"Container trainer for pod {namespace}/{name}-x failed with exit code {exit_code} "
                        f"matching FailJob rule at index {rule}"
                    )
                    status["conditions"] = [
                        _condition("FailureTarget", "PodFailurePolicy", message),
                        _condition("Failed", "PodFailurePolicy", message),
                    ]
                else:
                    status["conditions"] = [
                        _condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
                    ]
            job["metadata"]["resourceVersion"] = str(next(self._versions))

    def admit_job(self, namespace: str, name: str) -> None:
        """Kueue admits the Job (clears ``spec.suspend``); the Job controller starts its pods."""
        with self._lock:
            job = self.objects[("Job", namespace, name)]
            job["spec"]["suspend"] = False
            job["status"] = {
                "active": job["spec"].get("parallelism", 1),
                "startTime": "2024-01-01T00:00:30Z",
                "conditions": [_condition("Suspended", "JobResumed", "Job resumed", status="False")],
            }
            job["metadata"]["resourceVersion"] = str(next(self._versions))

    def disrupt_index(self, namespace: str, name: str, index: int) -> None:
        """The pod of ``index`` was preempted or evicted (condition ``DisruptionTarget``): the
        first ``podFailurePolicy`` rule on that condition decides, as the Job API documents:
        ``Ignore`` replaces the pod without counting it; ``FailJob`` fails the Job (its message
        names the condition and the rule) and terminates its other pods."""
        with self._lock:
            job = self.objects[("Job", namespace, name)]
            rules = ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []
            for at, rule in enumerate(rules):
                if any(c.get("type") == "DisruptionTarget" for c in rule.get("onPodConditions") or []):
                    if rule.get("action") == "FailJob":
                        message = (
                            f"Pod {namespace}/{name}-{index}-x has condition DisruptionTarget "
                            f"matching FailJob rule at index {at}"
                        )
                        job["status"].update(active=0, failed=job["status"].get("failed", 0) + 1)
                        job["status"]["conditions"] = [
                            _condition("FailureTarget", "PodFailurePolicy", message),
                            _condition("Failed", "PodFailurePolicy", message),
                        ]
                        job["metadata"]["resourceVersion"] = str(next(self._versions))
                    return  # Ignore (or Count under a limit not reached): the replacement pod runs
            # Not modelled: the Job API counts such a disruption as a pod failure. Every Job the
            # launcher builds has a rule for it, so reaching here means the launcher lost that rule.
            raise AssertionError(f"Job {namespace}/{name} has no podFailurePolicy rule for a DisruptionTarget")

    def fail_index(self, namespace: str, name: str, index: int, exit_code: int) -> None:
        """The pod of ``index`` of an Indexed Job (one pod per index running) failed with
        ``exit_code``, handled as the Job API documents it: a matching ``FailJob`` rule fails the
        Job; with ``backoffLimitPerIndex`` the index fails alone (the Job fails once more indexes
        failed than ``maxFailedIndexes``, or when every index has finished); otherwise the failure
        counts against ``backoffLimit`` (default 6) and, past it, fails the Job. A failed Job's
        running pods are terminated (``active`` 0)."""
        with self._lock:
            job = self.objects[("Job", namespace, name)]
            spec, status = job["spec"], job["status"]
            if any(c["type"] in ("Complete", "Failed") for c in status.get("conditions") or []):
                return
            status["failed"] = status.get("failed", 0) + 1
            rule = _fail_job_rule(job, exit_code)
            ended: tuple[str, str] | None = None
            if rule is not None:
                ended = (
                    "PodFailurePolicy",
                    f"Container trainer failed with exit code {exit_code} matching FailJob rule at index {rule}",
                )
            elif spec.get("backoffLimitPerIndex") is not None:
                failed = sorted({*map(int, filter(None, (status.get("failedIndexes") or "").split(","))), index})
                status["failedIndexes"] = ",".join(map(str, failed))
                status["active"] -= 1
                if spec.get("maxFailedIndexes") is not None and len(failed) > spec["maxFailedIndexes"]:
                    ended = (
                        "MaxFailedIndexesExceeded",
                        "Job has exceeded the specified maximal number of failed indexes",
                    )
                elif status["active"] == 0:
                    ended = ("FailedIndexes", "Job has failed indexes")
            elif status["failed"] > spec.get("backoffLimit", 6):
                ended = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            if ended is not None:
                status["active"] = 0
                status["conditions"] = [_condition("FailureTarget", *ended), _condition("Failed", *ended)]
            job["metadata"]["resourceVersion"] = str(next(self._versions))

    def jobs_named(self, namespace: str, name: str) -> int:
        """How many Jobs of this name were ever created (at most one, the name being the key)."""
        return self.created.count(("Job", namespace, name))


def _condition(kind: str, reason: str, message: str, status: str = "True") -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": "2024-01-01T00:01:00Z",
        "lastTransitionTime": "2024-01-01T00:01:00Z",
    }


def _fail_job_rule(job: dict[str, Any], exit_code: int) -> int | None:
    """The index of the first podFailurePolicy rule that fails the Job for this exit code, if any."""
    rules = ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []
    for index, rule in enumerate(rules):
        codes = rule.get("onExitCodes")
        if not codes:
            continue
        listed = exit_code in codes.get("values", [])
        if listed == (codes.get("operator") == "In"):  # In: listed; NotIn: not listed
            return index if rule.get("action") == "FailJob" else None
    return None


class FakeBatchV1Api:
    """The BatchV1Api calls the launcher makes."""

    def __init__(self, cluster: FakeKubernetes) -> None:
        self.cluster = cluster
        self.api_client = cluster.api_client

    def create_namespaced_job(self, namespace: str, body: Any, **kw: Any) -> KubeObject:
        return self.cluster.create("Job", namespace, body)

    def read_namespaced_job(self, name: str, namespace: str, **kw: Any) -> KubeObject:
        return self.cluster.read("Job", namespace, name)

    def list_namespaced_job(self, namespace: str, label_selector: str | None = None, **kw: Any) -> KubeObject:
        if kw.get("watch"):
            raise NotImplementedError("the fake has no watches: use start_watch=False")
        return self.cluster.list("Job", namespace, label_selector)

    def delete_namespaced_job(self, name: str, namespace: str, **kw: Any) -> KubeObject:
        return self.cluster.delete("Job", namespace, name)


class FakeCoreV1Api:
    """The CoreV1Api calls the launcher makes."""

    def __init__(self, cluster: FakeKubernetes) -> None:
        self.cluster = cluster
        self.api_client = cluster.api_client

    def create_namespaced_secret(self, namespace: str, body: Any, **kw: Any) -> KubeObject:
        return self.cluster.create("Secret", namespace, body)

    def create_namespaced_service(self, namespace: str, body: Any, **kw: Any) -> KubeObject:
        return self.cluster.create("Service", namespace, body)
