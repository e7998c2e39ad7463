"""Prometheus metrics (prometheus-client, one registry per app) and structured request logs.

Every HTTP request gets an id (``x-request-id`` on the response, ``request_id`` in every log
line written while it is handled), a JSON access-log line, and a count and latency by route
template and status. Job gauges are read from the database at scrape time.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.protocol.fine_tuning import JobStatus

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("hone.access")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "hone_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.http_latency = Histogram(
            "hone_http_request_duration_seconds", "HTTP request latency", ["route", "method"], registry=r
        )
        self.upload_bytes = Counter("hone_upload_bytes_total", "Bytes received by POST /v1/files", registry=r)
        self.gateway_requests = Counter(
            "hone_gateway_requests_total",
            "Requests proxied to inference upstreams",
            ["base_model", "mode", "status"],
            registry=r,
        )
        self.gateway_tokens = Counter(
            "hone_gateway_tokens_total", "Tokens reported by upstreams", ["base_model", "kind"], registry=r
        )
        self.gateway_latency = Histogram(
            "hone_gateway_latency_seconds",
            "Gateway request latency (to the last byte)",
            ["base_model", "mode"],
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.upstream_restarts = Counter(
            "hone_upstream_restarts_total",
            "Inference servers restarted by hone up's supervisor after they exited",
            ["base_model"],
            registry=r,
        )
        self.adapter_cold_loads = Counter(
            "hone_gateway_adapter_cold_loads_total",
            "First requests for a fine-tuned model on an upstream since the gateway "
            "started (the upstream fetches and loads the adapter)",
            ["base_model"],
            registry=r,
        )

    def observe_gateway(self, base: str, mode: str, status: int, seconds: float, usage: dict | None) -> None:
        self.gateway_requests.labels(base, mode, str(status)).inc()
        self.gateway_latency.labels(base, mode).observe(seconds)
        if usage:
            self.gateway_tokens.labels(base, "prompt").inc(usage.get("prompt_tokens") or 0)
            self.gateway_tokens.labels(base, "completion").inc(usage.get("completion_tokens") or 0)

    def add_job_collector(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_JobCollector(counts))


class _JobCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        counts = self.counts()
        jobs = GaugeMetricFamily("hone_jobs", "Fine-tuning jobs by status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs
        yield GaugeMetricFamily("hone_queue_depth", "Jobs waiting for a trainer", value=counts.get(JobStatus.QUEUED, 0))


class RequestContextMiddleware:
    """Request id, access log and HTTP metrics; pure ASGI so streaming is untouched."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(16)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - started
            self.metrics.http_requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.http_latency.labels(route, scope["method"]).observe(elapsed)
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                    }
                )
            )
            request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # hone.access has the request id
