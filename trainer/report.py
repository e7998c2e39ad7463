"""Reports to the control plane's internal API, retried with backoff.

Every report carries an id the trainer makes (``metrics-step-12``, ``ckpt-step-40``), so a
report retried after a lost answer, or re-sent by a resumed attempt, is recorded once. A
control plane that is down for a while only delays reports: each one is retried for up to
``retry_for_s`` seconds. A 401 means this attempt was superseded (the job was relaunched or
ended); the trainer stops.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from contract.spec import EventReport, ResumePoint

log = logging.getLogger(__name__)


class Superseded(RuntimeError):
    """The control plane no longer accepts this attempt's reports."""


class Reporter:
    def __init__(self, url: str, token: str, *, retry_for_s: float = 300.0, flush_every_s: float = 1.0) -> None:
        self._http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.retry_for_s = retry_for_s
        self.flush_every_s = flush_every_s
        self._pending: list[EventReport] = []
        self._last_flush = 0.0
        self.action = "continue"
        self._beat_stop: threading.Event | None = None

    def post(self, path: str, body: dict[str, Any]) -> str:
        self.action = str(self._call("POST", path, body).get("action", "continue"))
        return self.action

    def resume_point(self) -> str | None:
        """The job's newest complete checkpoint, as the control plane knows it now."""
        return ResumePoint.model_validate(self._call("GET", "/resume-point")).resume_uri

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.5
        while True:
            try:
                r = self._http.request(method, path, json=body)
                if r.status_code == 401:
                    raise Superseded(r.text)
                if r.status_code < 500:
                    r.raise_for_status()
                    return dict(r.json())
                problem = f"HTTP {r.status_code}"
            except httpx.TransportError as e:
                problem = repr(e)
            if time.monotonic() > deadline:
                raise RuntimeError(f"control plane unreachable for {self.retry_for_s:.0f}s: {problem}")
            log.warning("report %s failed (%s); retrying in %.1fs", path, problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def event(
        self,
        id: str,
        message: str,
        *,
        level: str = "info",
        type: str = "message",
        data: dict[str, Any] | None = None,
        flush: bool = False,
    ) -> str:
        self._pending.append(
            EventReport(
                id=id,
                created_at=int(time.time()),
                level=level,
                message=message,
                type=type,
                data=data,
            )
        )
        if flush or time.monotonic() - self._last_flush >= self.flush_every_s:
            return self.flush()
        return self.action

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> str:
        batch, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        return self.post("/events", {"events": [e.model_dump() for e in batch]})

    def start_heartbeat(self, every_s: float) -> None:
        """Tell the control plane every ``every_s`` seconds that this attempt is alive, from a
        thread of its own, so a long step is not mistaken for a hung trainer (and a stopped or
        cut-off one is: its heartbeats stop with it)."""
        stop = self._beat_stop = threading.Event()

        def beat() -> None:
            with httpx.Client(base_url=self._http.base_url, headers=self._http.headers, timeout=10) as http:
                while not stop.wait(every_s):
                    try:
                        http.post("/progress", json={})
                    except httpx.HTTPError as e:  # the next beat retries; the main thread's reports do too
                        log.warning("heartbeat failed: %r", e)

        threading.Thread(target=beat, name="hone-heartbeat", daemon=True).start()

    def close(self) -> None:
        if self._beat_stop is not None:
            self._beat_stop.set()
        self._http.close()
