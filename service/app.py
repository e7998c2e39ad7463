"""``create_app(settings)``: wires the context, routers, error translation and the loops."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from contract.blobstore import open_blobstore
from service import auth, ui
from service.api import (
    admin,
    checkpoint_permissions,
    errors,
    evals,
    files,
    fine_tuning,
    graders,
    health,
    inference,
    internal,
    metrics,
    models,
    uploads,
)
from service.api.guard import RequestGuard
from service.catalog.catalog import Catalog, default_catalog
from service.config import Settings
from service.context import AppContext
from service.db.schema import Job
from service.db.session import Database
from service.evals.runner import EvalRunner
from service.gateway.discovery import build_upstream_source
from service.gateway.proxy import Gateway
from service.gateway.usage import UsageRecorder
from service.launcher.base import Launcher
from service.launcher.registry import build_launcher
from service.observability import RequestContextMiddleware
from service.scheduling.dispatcher import Dispatcher
from service.scheduling.janitor import Janitor
from service.scheduling.loops import BackgroundLoops
from service.scheduling.reconciler import Reconciler
from service.scheduling.validate_jobs import JobValidator

log = logging.getLogger(__name__)


def build_context(settings: Settings, launcher: Launcher | None = None, catalog: Catalog | None = None) -> AppContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    if catalog is None:
        catalog = (
            Catalog.from_yaml(settings.catalog_path)
            if settings.catalog_path
            else default_catalog(settings.data_dir, settings.models)
        )
    ctx = AppContext(
        settings=settings,
        db=db,
        store=open_blobstore(settings.resolved_storage_url),
        catalog=catalog,
        launcher=launcher,
        loops=BackgroundLoops(settings.loop_interval_s),
        keys=auth.KeyCache(settings.auth_cache_s),
        dataset_checks=threading.BoundedSemaphore(settings.dataset_check_concurrency),
    )

    def job_counts() -> dict[str, int]:
        with db.session() as s:
            return {status: n for status, n in s.execute(select(Job.status, func.count()).group_by(Job.status))}

    ctx.metrics.add_job_collector(job_counts)
    return ctx


def add_loops(ctx: AppContext) -> None:
    ctx.loops.add("validator", JobValidator(ctx.db, ctx.store, ctx.catalog, ctx.settings, ctx.token_counters).run_once)
    ctx.loops.add("janitor", Janitor(ctx.db, ctx.store).run_once)
    if ctx.launcher is not None:
        ctx.loops.add("dispatcher", Dispatcher(ctx.db, ctx.store, ctx.catalog, ctx.launcher, ctx.settings).run_once)
        ctx.loops.add("reconciler", Reconciler(ctx.db, ctx.launcher, ctx.settings).run_once)


def create_app(
    settings: Settings | None = None, *, launcher: Launcher | None = None, catalog: Catalog | None = None
) -> FastAPI:
    settings = settings or Settings()
    ctx = build_context(settings, launcher, catalog)
    if ctx.launcher is None:
        ctx.launcher = build_launcher(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        timeout = httpx.Timeout(connect=5.0, read=settings.upstream_timeout_s, write=60.0, pool=30.0)
        http = httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        )
        key = settings.gateway.upstream_api_key
        usage = UsageRecorder(ctx.db)  # the gateway's inference usage, written by its own thread
        gateway = ctx.gateway = Gateway(
            http,
            observe=ctx.metrics.observe_gateway,
            cold_load=ctx.metrics.adapter_cold_loads,
            source=build_upstream_source(settings),
            api_key=key.get_secret_value() if key else None,
            usage=usage,
        )
        runner = ctx.eval_runner = EvalRunner(ctx)
        if settings.run_loops:
            add_loops(ctx)
            ctx.loops.start()
            await runner.start()
        try:
            yield
        finally:
            await runner.stop()
            await ctx.loops.stop()
            gateway.source.close()
            await anyio.to_thread.run_sync(usage.close)  # writes the last tally
            await http.aclose()
            if ctx.launcher is not None:
                ctx.launcher.shutdown(stop_attempts=settings.stop_trainers_on_exit)
            ctx.db.dispose()

    app = FastAPI(title="hone", version="0.1.0", lifespan=lifespan)
    app.state.ctx = ctx
    errors.install(app)
    for router in (
        admin.router,
        files.router,
        uploads.router,
        fine_tuning.router,
        graders.router,
        evals.router,
        checkpoint_permissions.router,
        models.router,
        inference.router,
        internal.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    ui.mount(app)
    app.add_middleware(RequestGuard, db=lambda: ctx.db, settings=settings, keys=ctx.keys)
    app.add_middleware(RequestContextMiddleware, metrics=ctx.metrics)  # outermost: sees every response
    return app
