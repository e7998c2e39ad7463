"""A FAKE launcher for tests: each attempt is a thread that plays a trainer's part. No model is
trained, but everything the control plane sees is real: reports go through the trainer's own
report client (``trainer.report.Reporter``) over the real internal HTTP API, and checkpoints,
the final adapter and the result CSV are written at the real blob layout (``contract.layout``)
with a real ``Manifest`` written last. The real trainer and launchers live in trainer/ and
service/launcher/. Behaviour per attempt is scripted with ``Script``."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

from contract.blobstore import BlobStore, write_bytes
from contract.layout import ADAPTER_CONFIG, ADAPTER_WEIGHTS, JobLayout, checkpoint_step, manifest_key
from contract.manifest import Manifest
from contract.spec import JobSpec
from service.catalog.catalog import TrainingResources
from service.launcher.base import AttemptState
from trainer.report import Reporter, Superseded


@dataclass
class Script:
    steps: int = 4
    checkpoint_every: int = 2
    fail_with_exit_code: int | None = None  # exit with this code after the first checkpoint
    hold: bool = False  # keep reporting until told to pause or cancel
    step_delay_s: float = 0.0
    silent_after: int | None = None  # after this step, stay alive but report nothing (a hung trainer)


@dataclass
class _Attempt:
    spec: JobSpec
    thread: threading.Thread
    state: AttemptState = field(default_factory=lambda: AttemptState("running"))
    stop: threading.Event = field(default_factory=threading.Event)


class FakeTrainerLauncher:
    def __init__(self, store: BlobStore, script: Script | None = None) -> None:
        self.store = store
        self.script = script or Script()
        self.scripts: dict[int, Script] = {}  # per attempt number, overrides ``script``
        self.attempts: dict[tuple[str, int], _Attempt] = {}
        self.started: list[JobSpec] = []
        self._lock = threading.Lock()

    # Launcher protocol
    def start(self, spec: JobSpec, resources: TrainingResources) -> None:
        with self._lock:
            if (spec.job_id, spec.attempt) in self.attempts:
                return
            t = threading.Thread(target=self._run, args=(spec,), daemon=True)
            self.attempts[(spec.job_id, spec.attempt)] = _Attempt(spec, t)
            self.started.append(spec)
        t.start()

    def poll(self, job_id: str, attempt: int) -> AttemptState:
        a = self.attempts.get((job_id, attempt))
        return a.state if a else AttemptState("missing")

    def cancel(self, job_id: str, attempt: int) -> None:
        a = self.attempts.get((job_id, attempt))
        if a:
            a.stop.set()

    def shutdown(self, stop_attempts: bool) -> None:
        if stop_attempts:
            for a in self.attempts.values():
                a.stop.set()

    # The fake trainer
    def _run(self, spec: JobSpec) -> None:
        a = self.attempts[(spec.job_id, spec.attempt)]
        script = self.scripts.get(spec.attempt, self.script)
        reporter = Reporter(spec.report_url, spec.report_token, retry_for_s=10, flush_every_s=0)
        if script.silent_after is None:  # as the real trainer does; a silent script is a stopped process
            reporter.start_heartbeat(spec.heartbeat_s)
        try:
            code = self._train(spec, script, reporter, a.stop)
        except Superseded:
            code = 75
        except Exception as e:  # a crashing fake trainer is a failed attempt, like a real one
            a.state = AttemptState("failed", exit_code=1, detail=repr(e))
            return
        finally:
            reporter.close()
        a.state = AttemptState(
            "succeeded" if code == 0 else "failed",
            exit_code=code,
            detail="" if code == 0 else f"fake trainer exited with {code}",
        )

    def _write_adapter(self, spec: JobSpec, prefix: str, step: int) -> str:
        weights, config = f"fake weights at step {step}".encode(), b'{"r": 16}'
        write_bytes(self.store, f"{prefix}/{ADAPTER_WEIGHTS}", weights)
        write_bytes(self.store, f"{prefix}/{ADAPTER_CONFIG}", config)
        manifest = Manifest(
            model_name=spec.fine_tuned_model,
            base_model=spec.base_model,
            job_id=spec.job_id,
            step=step,
            training_type=spec.hyperparameters.training_type,
            rank=spec.hyperparameters.lora_rank,
            target_modules=spec.hyperparameters.target_modules,
            files={
                ADAPTER_WEIGHTS: hashlib.sha256(weights).hexdigest(),
                ADAPTER_CONFIG: hashlib.sha256(config).hexdigest(),
            },
        )
        write_bytes(self.store, manifest_key(prefix), manifest.encode())  # last: the directory is complete
        return self.store.uri(prefix)

    def _train(self, spec: JobSpec, script: Script, reporter: Reporter, stop: threading.Event) -> int:
        layout = JobLayout(self.store.key_from_uri(spec.output_uri))
        tag = f"a{spec.attempt}"
        start_step = 0
        resume_uri = reporter.resume_point() or spec.resume_uri  # as the real trainer asks at start
        if resume_uri:
            start_step = checkpoint_step(resume_uri)
            reporter.event(f"{tag}-resume", f"Resuming from step {start_step}", flush=True)
        else:
            reporter.event(f"{tag}-start", "Fine-tuning job started", flush=True)
        rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        step = start_step
        while step < script.steps or script.hold:
            if stop.is_set():
                return 137
            step += 1
            loss = round(2.0 / step, 5)
            action = reporter.event(
                f"step-{step}",
                f"Step {step}/{script.steps}: training loss={loss:.2f}",
                type="metrics",
                flush=True,
                data={"step": step, "train_loss": loss, "train_mean_token_accuracy": 0.5, "total_steps": script.steps},
            )
            rows.append(f"{step},{loss},0.5,,")
            if step % script.checkpoint_every == 0 or action == "pause":
                uri = self._write_adapter(spec, layout.checkpoint(step), step)
                reporter.post(
                    "/checkpoints",
                    {
                        "id": f"ckpt-{step}",
                        "step_number": step,
                        "metrics": {"step": step, "train_loss": loss},
                        "uri": uri,
                    },
                )
                if script.fail_with_exit_code is not None:
                    return script.fail_with_exit_code
            if script.silent_after is not None and step >= script.silent_after:
                stop.wait()  # hung: alive, silent, until the launcher stops it
                return 137
            if action == "pause":
                return 0
            if action == "cancel":
                return 137
            if script.hold and step >= script.steps:
                step -= 1  # keep the step counter still while holding
                time.sleep(0.05)
            time.sleep(script.step_delay_s)
        final = self._write_adapter(spec, layout.final, step)
        write_bytes(self.store, layout.result_csv, ("\n".join(rows) + "\n").encode())
        reporter.post(
            "/complete",
            {"adapter_uri": final, "trained_tokens": 1000 * step, "result_file_uri": self.store.uri(layout.result_csv)},
        )
        return 0
