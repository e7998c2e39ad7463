"""Launcher conformance: every launcher backend (service/launcher/registry.py) keeps the promises of
the ``Launcher`` protocol (service/launcher/base.py) that the reconciler builds on.

The properties, each checked for every backend:

1. ``start`` is idempotent: a second ``start`` of the same attempt, while it runs or after it has
   ended, starts nothing new (one process, one Job) and changes nothing the launcher reports.
2. ``poll`` reaches a terminal state: ``succeeded`` with exit code 0 for an attempt that exits 0,
   ``failed`` with the exit code for one that exits non-zero. The trainer's bad-input code
   (``EXIT_BAD_INPUT``) comes back exactly from every backend; other codes come back exactly where
   the backend sees them (a local process), and as some non-zero code where it does not (a
   Kubernetes Job's status only says that its pod failed).
3. ``cancel`` after the end is a no-op: it raises nothing, and ``poll`` reports the same state.
4. An attempt the backend has never seen (another job, or another attempt of a running job) is
   ``missing``.
5. ``cancel`` of a running attempt ends it: ``poll`` stops reporting ``running`` within a bounded
   wait.
6. ``shutdown(stop_attempts=False)`` returns without error, with an attempt running.

Backends, one driver each:

* ``local``: a real ``LocalLauncher`` running a real subprocess per attempt, the FAKE trainer
  program ``tests/fakes/trainer_process.py`` in place of the real trainer; how the attempt ends is
  set through the launcher's ``env`` when it starts.
* ``kubernetes``: a real ``KubernetesLauncher`` over the in-memory FAKE Kubernetes API of
  ``tests/fakes/kubernetes.py``, whose fake Job controller, driven between polls, ends each Job
  the way its pod was scripted to exit. No watch: ``poll`` reads each Job from the (fake) API.
* ``kubernetes-real``: the same launcher against the cluster of ``KUBECONFIG`` (marked ``k8s``,
  skipped without it), in the namespace ``HONE_K8S_TEST_NAMESPACE`` (default ``default``); each
  Job's trainer container runs ``busybox`` with a shell command that exits or sleeps instead.

An attempt's end is scripted when it starts (``Driver.start(spec, exit_code)``, ``None``: run until
cancelled), since a real process or pod decides its own end. A new backend adds one driver class
and its id in ``BACKENDS``; the properties are written once. Every wait is a poll loop with a
deadline (``Driver.wait_s``); nothing asserts on timing.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from contract.spec import EXIT_BAD_INPUT, JobSpec
from service.catalog.catalog import TrainingResources
from service.launcher.base import AttemptState, Launcher
from service.launcher.config import KubernetesLauncherConfig, LocalLauncherConfig
from service.launcher.kubernetes import LABEL_ATTEMPT, LABEL_JOB, KubernetesLauncher, job_name
from service.launcher.local import LocalLauncher
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.trainer_process import EXIT_ENV, PIDS_FILE, SLEEP_ENV
from tests.harness.records import job_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_UNTIL_CANCELLED: int | None = None


# A known gap, kept visible (strict: this fails once it is fixed, so the mark goes then).
def _spec(job_id: str | None = None, attempt: int = 1) -> JobSpec:
    return job_spec(
        job_id or f"ftjob-{uuid.uuid4().hex[:24]}",
        attempt=attempt,
        project="proj_conformance",
        report_token="conformance-token",
    )


class Driver(Protocol):
    """What the properties need of a backend besides the ``Launcher`` itself."""

    launcher: Launcher
    resources: TrainingResources
    wait_s: float  # deadline of each bounded wait
    interval_s: float  # between polls
    exact_exit_codes: bool  # whether ``failed`` carries any exit code exactly (else only EXIT_BAD_INPUT)

    def start(self, spec: JobSpec, exit_code: int | None) -> None:
        """Start the attempt, scripted to exit with ``exit_code`` (None: run until cancelled)."""

    def tick(self) -> None:
        """Between polls: let the attempts run their course where nothing else does."""

    def instances(self, spec: JobSpec) -> int:
        """How many processes / Jobs were started for the attempt."""

    def close(self) -> None:
        """Stop and remove what the test started."""


class LocalDriver:
    """A real LocalLauncher whose attempts are real processes of the fake trainer."""

    wait_s, interval_s, exact_exit_codes = 10.0, 0.05, True

    def __init__(self, tmp_path: Path) -> None:
        self.runs = tmp_path / "runs"
        pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        self.local = LocalLauncher(
            self.runs,
            LocalLauncherConfig(kill_grace_s=1.0),
            env={"PYTHONPATH": pythonpath},
            trainer_module="tests.fakes.trainer_process",
        )
        self.launcher: Launcher = self.local
        self.resources = TrainingResources(gpus=0, cpu="1", memory="1Gi")

    def start(self, spec: JobSpec, exit_code: int | None) -> None:
        self.local.env[SLEEP_ENV] = "0" if exit_code is not None else "600"
        self.local.env[EXIT_ENV] = str(exit_code or 0)
        self.launcher.start(spec, self.resources)

    def tick(self) -> None:
        pass  # the processes run by themselves

    def instances(self, spec: JobSpec) -> int:
        attempt_dir = self.runs / spec.job_id / f"attempt-{spec.attempt}"
        # Live processes first: one that exits after this scan has written its pid to the file by then.
        live = _processes_in(attempt_dir)
        pids = attempt_dir / PIDS_FILE
        started = {int(p) for p in pids.read_text().split()} if pids.exists() else set()
        return len(live | started)

    def close(self) -> None:
        self.launcher.shutdown(stop_attempts=True)


def _processes_in(directory: Path) -> set[int]:
    """The pids of the live processes working in ``directory`` (the launcher starts each attempt's
    there). Their working directory, unlike their command line, is set before ``exec`` returns."""
    found, target = set(), str(directory.resolve())
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "cwd") == target:
                    found.add(int(proc.name))
            except OSError:
                pass  # exited meanwhile, or not ours to inspect
    return found


class FakeKubernetesDriver:
    """A real KubernetesLauncher over the fake API; the fake Job controller plays the pods."""

    wait_s, interval_s, exact_exit_codes = 2.0, 0.01, False

    def __init__(self, tmp_path: Path) -> None:
        self.cluster = FakeKubernetes()
        self.cfg = KubernetesLauncherConfig(namespace="hone")
        self.launcher = KubernetesLauncher(
            self.cfg, batch=self.cluster.batch, core=self.cluster.core, start_watch=False
        )
        self.resources = TrainingResources(gpus=1)
        self.exits: dict[str, int | None] = {}  # Job name -> how its pod exits

    def start(self, spec: JobSpec, exit_code: int | None) -> None:
        self.exits[job_name(spec.job_id, spec.attempt)] = exit_code
        self.launcher.start(spec, self.resources)

    def tick(self) -> None:
        """Each scripted pod that has not yet exited does now; the controller ends its Job."""
        for name, code in self.exits.items():
            if code is not None and ("Job", self.cfg.namespace, name) in self.cluster.objects:
                self.cluster.finish_job(self.cfg.namespace, name, code)

    def instances(self, spec: JobSpec) -> int:
        return self.cluster.jobs_named(self.cfg.namespace, job_name(spec.job_id, spec.attempt))

    def close(self) -> None:
        self.launcher.shutdown(stop_attempts=False)


class _BusyboxJobs:
    """The real BatchV1Api, except that each created Job's trainer container runs a shell command
    that exits with the scripted code (or sleeps until cancelled) instead of the trainer."""

    def __init__(self, batch: Any) -> None:
        self._batch = batch
        self.exits: dict[str, int | None] = {}
        self.created: set[str] = set()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._batch, attr)

    def create_namespaced_job(self, namespace: str, body: dict[str, Any], **kw: Any) -> Any:
        name = body["metadata"]["name"]
        code = self.exits.get(name)
        (container,) = body["spec"]["template"]["spec"]["containers"]
        container["command"] = ["sh", "-c", "sleep 3600" if code is None else f"exit {code}"]
        self.created.add(name)
        return self._batch.create_namespaced_job(namespace, body, **kw)


class RealKubernetesDriver:
    """The KubernetesLauncher against the cluster of KUBECONFIG, with busybox for the trainer."""

    wait_s, interval_s, exact_exit_codes = 180.0, 1.0, False

    def __init__(self, tmp_path: Path) -> None:
        from kubernetes import client, config

        config.load_kube_config()
        api = client.ApiClient()
        self.cfg = KubernetesLauncherConfig(
            namespace=os.environ.get("HONE_K8S_TEST_NAMESPACE", "default"),
            trainer_image="busybox:1.36",
            service_account="default",
            storage_secret=None,
            storage_config_map=None,
            models_pvc=None,
            active_deadline_s=600,
            ttl_after_finished_s=600,
        )
        self.batch = _BusyboxJobs(client.BatchV1Api(api))
        self.launcher = KubernetesLauncher(self.cfg, batch=self.batch, core=client.CoreV1Api(api), start_watch=False)
        self.resources = TrainingResources(gpus=0, cpu="50m", memory="32Mi", scratch="64Mi")

    def start(self, spec: JobSpec, exit_code: int | None) -> None:
        self.batch.exits[job_name(spec.job_id, spec.attempt)] = exit_code
        self.launcher.start(spec, self.resources)

    def tick(self) -> None:
        pass  # the cluster runs the pods

    def instances(self, spec: JobSpec) -> int:
        selector = f"{LABEL_JOB}={spec.job_id},{LABEL_ATTEMPT}={spec.attempt}"
        return len(self.batch.list_namespaced_job(self.cfg.namespace, label_selector=selector).items)

    def close(self) -> None:
        from kubernetes.client.exceptions import ApiException

        self.launcher.shutdown(stop_attempts=False)
        for name in self.batch.created:
            try:
                self.batch.delete_namespaced_job(name, self.cfg.namespace, propagation_policy="Background")
            except ApiException as e:
                if e.status != 404:
                    raise


DRIVERS: dict[str, Callable[[Path], Driver]] = {
    "local": LocalDriver,
    "kubernetes": FakeKubernetesDriver,
    "kubernetes-real": RealKubernetesDriver,
}
BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("kubernetes", id="kubernetes"),
    pytest.param(
        "kubernetes-real",
        id="kubernetes-real",
        marks=[
            pytest.mark.k8s,
            pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a cluster (KUBECONFIG)"),
        ],
    ),
]


@pytest.fixture(params=BACKENDS)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    d = DRIVERS[request.param](tmp_path)
    try:
        yield d
    finally:
        d.close()


def _wait(driver: Driver, spec: JobSpec, until: Callable[[AttemptState], bool], what: str) -> AttemptState:
    deadline = time.monotonic() + driver.wait_s
    while True:
        driver.tick()
        state = driver.launcher.poll(spec.job_id, spec.attempt)
        if until(state):
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"attempt {spec.job_id}/{spec.attempt}: not {what} within {driver.wait_s}s; last: {state}")
        time.sleep(driver.interval_s)


def _ended(driver: Driver, spec: JobSpec) -> AttemptState:
    return _wait(driver, spec, lambda s: not s.alive, "ended")


def test_start_is_idempotent(driver: Driver) -> None:
    running, ended = _spec(), _spec()
    driver.start(running, RUN_UNTIL_CANCELLED)
    driver.launcher.start(running, driver.resources)  # again, while it runs
    assert driver.instances(running) == 1
    assert driver.launcher.poll(running.job_id, running.attempt).phase == "running"

    driver.start(ended, 0)
    before = _ended(driver, ended)
    driver.launcher.start(ended, driver.resources)  # again, after the end
    assert driver.instances(ended) == 1
    assert driver.launcher.poll(ended.job_id, ended.attempt) == before


@pytest.mark.parametrize("exit_code", [0, 3, EXIT_BAD_INPUT])
def test_poll_reaches_a_terminal_state(driver: Driver, exit_code: int) -> None:
    spec = _spec()
    driver.start(spec, exit_code)
    state = _ended(driver, spec)
    if exit_code == 0:
        assert (state.phase, state.exit_code) == ("succeeded", 0)
        return
    assert state.phase == "failed", state
    if driver.exact_exit_codes or exit_code == EXIT_BAD_INPUT:
        assert state.exit_code == exit_code, state
    else:
        assert state.exit_code not in (None, 0), state


@pytest.mark.parametrize("exit_code", [0, 3])
def test_cancel_after_the_end_is_a_noop(driver: Driver, exit_code: int) -> None:
    spec = _spec()
    driver.start(spec, exit_code)
    before = _ended(driver, spec)
    driver.launcher.cancel(spec.job_id, spec.attempt)
    driver.tick()
    assert driver.launcher.poll(spec.job_id, spec.attempt) == before


def test_an_unknown_attempt_is_missing(driver: Driver) -> None:
    assert driver.launcher.poll(f"ftjob-{uuid.uuid4().hex[:24]}", 1).phase == "missing"
    spec = _spec()
    driver.start(spec, RUN_UNTIL_CANCELLED)
    assert driver.launcher.poll(spec.job_id, spec.attempt + 1).phase == "missing"  # another attempt of the job


def test_cancel_ends_a_running_attempt(driver: Driver) -> None:
    spec = _spec()
    driver.start(spec, RUN_UNTIL_CANCELLED)
    assert driver.launcher.poll(spec.job_id, spec.attempt).phase == "running"
    driver.launcher.cancel(spec.job_id, spec.attempt)
    _ended(driver, spec)


def test_shutdown_without_stopping_attempts_returns(driver: Driver) -> None:
    spec = _spec()
    driver.start(spec, RUN_UNTIL_CANCELLED)
    driver.launcher.shutdown(stop_attempts=False)
