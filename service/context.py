"""What the app holds for its lifetime: settings, database, blob store, catalog, launcher,
and the background loops."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contract.blobstore import BlobStore
from service.auth import KeyCache
from service.catalog.catalog import Catalog
from service.config import Settings
from service.db.session import Database
from service.gateway.proxy import Gateway
from service.launcher.base import Launcher
from service.observability import Metrics
from service.scheduling.loops import BackgroundLoops
from service.validation import TokenCounters

if TYPE_CHECKING:  # the runner imports this module
    from service.evals.runner import EvalRunner


@dataclass
class AppContext:
    settings: Settings
    db: Database
    store: BlobStore
    catalog: Catalog
    launcher: Launcher | None = None
    loops: BackgroundLoops = field(default_factory=lambda: BackgroundLoops(1.0))
    metrics: Metrics = field(default_factory=Metrics)
    gateway: Gateway | None = None  # created in the app's lifespan (it owns an async HTTP client)
    # What else /readyz waits for (e.g. the vLLM servers `hone up` supervises): None when ready,
    # else the reason it is not.
    readiness: list[Callable[[], str | None]] = field(default_factory=list)
    # Project keys the request guard authenticated lately; the Admin API evicts a project's
    # entries when it archives the project or revokes one of its keys.
    keys: KeyCache = field(default_factory=lambda: KeyCache(1.0))
    # Executes eval runs; created in the app's lifespan (it uses the gateway). Its kick() after a
    # run is created starts it at once.
    eval_runner: EvalRunner | None = None
    # Tokenizers, one per model source, shared by the job validator and the dataset check.
    token_counters: TokenCounters = field(default_factory=TokenCounters)
    # Dataset checks running now: each reads and tokenizes a whole file on a request thread, so
    # at most settings.dataset_check_concurrency at once (build_context sizes it).
    dataset_checks: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))
