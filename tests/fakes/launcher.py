"""A FAKE launcher for tests: each attempt is a thread that plays a trainer's part over the
real internal HTTP API (events, checkpoints with a manifest in the real blob store,
completion). No model is trained; the real trainer and launchers live in trainer/ and
service/launcher/. Behaviour per attempt is scripted with ``Script``."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import httpx

from service.blobstore import BlobStore
from service.launcher.base import AttemptState
from trainer.spec import JobSpec


@dataclass
class Script:
    steps: int = 4
    checkpoint_every: int = 2
    fail_with_exit_code: int | None = None  # exit with this code after the first checkpoint
    hold: bool = False  # keep reporting until told to pause or cancel
    step_delay_s: float = 0.0


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
    def start(self, spec: JobSpec) -> None:
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

    # The fake trainer
    def _run(self, spec: JobSpec) -> None:
        a = self.attempts[(spec.job_id, spec.attempt)]
        script = self.scripts.get(spec.attempt, self.script)
        http = httpx.Client(base_url=spec.report_url, headers={"Authorization": f"Bearer {spec.report_token}"})
        try:
            code = self._train(spec, script, http, a.stop)
        except Exception as e:  # a crashing fake trainer is a failed attempt, like a real one
            a.state = AttemptState("failed", exit_code=1, detail=repr(e))
            return
        finally:
            http.close()
        a.state = AttemptState("succeeded" if code == 0 else "failed", exit_code=code,
                               detail="" if code == 0 else f"fake trainer exited with {code}")

    def _post(self, http: httpx.Client, path: str, body: dict) -> str:  # type: ignore[type-arg]
        r = http.post(path, json=body)
        r.raise_for_status()
        return str(r.json()["action"])

    def _write_adapter(self, prefix_key: str, step: int) -> str:
        with self.store.writer(f"{prefix_key}/adapter_model.safetensors") as w:
            w.write(f"fake weights at step {step}".encode())
            w.commit()
        with self.store.writer(f"{prefix_key}/manifest.json") as w:
            w.write(json.dumps({"step": step, "fake": True}).encode())
            w.commit()
        return self.store.uri(prefix_key)

    def _train(self, spec: JobSpec, script: Script, http: httpx.Client, stop: threading.Event) -> int:
        out = self.store.key_from_uri(spec.output_uri)
        tag = f"a{spec.attempt}"
        start_step = 0
        if spec.resume_uri:
            start_step = int(spec.resume_uri.rstrip("/").rsplit("step-", 1)[1])
            self._post(http, "/events", {"events": [{"id": f"{tag}-resume", "message": f"Resuming from step {start_step}"}]})
        else:
            self._post(http, "/events", {"events": [{"id": f"{tag}-start", "message": "Fine-tuning job started"}]})
        rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        step = start_step
        while step < script.steps or script.hold:
            if stop.is_set():
                return 137
            step += 1
            loss = round(2.0 / step, 5)
            action = self._post(http, "/events", {"events": [{
                "id": f"step-{step}", "type": "metrics",
                "message": f"Step {step}/{script.steps}: training loss={loss:.2f}",
                "data": {"step": step, "train_loss": loss, "train_mean_token_accuracy": 0.5,
                         "total_steps": script.steps}}]})
            rows.append(f"{step},{loss},0.5,,")
            if step % script.checkpoint_every == 0 or action == "pause":
                uri = self._write_adapter(f"{out}/checkpoints/step-{step}", step)
                self._post(http, "/checkpoints", {"id": f"ckpt-{step}", "step_number": step,
                                                  "metrics": {"step": step, "train_loss": loss}, "uri": uri})
                if script.fail_with_exit_code is not None:
                    return script.fail_with_exit_code
            if action == "pause":
                return 0
            if action == "cancel":
                return 137
            if script.hold and step >= script.steps:
                step -= 1  # keep the step counter still while holding
                time.sleep(0.05)
            time.sleep(script.step_delay_s)
        final = self._write_adapter(f"{out}/final", step)
        with self.store.writer(f"{out}/results.csv") as w:
            w.write(("\n".join(rows) + "\n").encode())
            w.commit()
        self._post(http, "/complete", {"adapter_uri": final, "trained_tokens": 1000 * step,
                                       "result_file_uri": self.store.uri(f"{out}/results.csv")})
        return 0
