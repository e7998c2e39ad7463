"""A list-then-watch cache of one kind of Kubernetes object in a namespace, keyed by name.

It lists once, then watches from the list's resourceVersion; when the server says that
version is too old (410 Gone, as an ERROR event or as an ApiException) it lists again. It is
level-triggered: whatever was missed while not watching is corrected by the next list. Shared
by the gateway (vLLM EndpointSlices) and the Kubernetes launcher (trainer Jobs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Informer(Generic[T]):
    """``list_fn`` is a client ``list_namespaced_*`` method (the watch streams from it too);
    ``to_value`` turns an object, as a plain camelCase dict, into what is cached for it."""

    def __init__(
        self,
        list_fn: Callable[..., Any],
        namespace: str,
        label_selector: str,
        *,
        sanitize: Callable[[Any], dict[str, Any]],
        to_value: Callable[[dict[str, Any]], T],
        what: str,
        log: logging.Logger,
    ) -> None:
        self.list_fn, self.namespace, self.label_selector = list_fn, namespace, label_selector
        self.sanitize, self.to_value, self.what = sanitize, to_value, what
        self.log = log  # the owner's logger, so its failures are logged under its name
        self.items: dict[str, T] = {}
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # readers on other threads iterate ``items`` while the watch edits it

    def _raw(self, obj: Any) -> dict[str, Any]:
        return obj if isinstance(obj, dict) else self.sanitize(obj)

    def get(self, name: str) -> T | None:
        with self._lock:
            return self.items.get(name)

    def values(self) -> list[T]:
        with self._lock:
            return list(self.items.values())

    def relist(self) -> None:
        listing = self.list_fn(self.namespace, label_selector=self.label_selector)
        items = {}
        for item in listing.items:
            raw = self._raw(item)
            items[raw["metadata"]["name"]] = self.to_value(raw)
        with self._lock:
            self.items = items  # replaced whole: what went away while not watching is dropped
        self.resource_version = listing.metadata.resource_version
        self.synced.set()

    def watch_once(self, watch: Any, timeout_s: int = 60) -> None:
        """One watch call from the current resourceVersion; re-list if it is too old."""
        from kubernetes.client.exceptions import ApiException

        if self.resource_version is None:
            self.relist()
        try:
            for event in watch.stream(
                self.list_fn,
                self.namespace,
                label_selector=self.label_selector,
                resource_version=self.resource_version,
                timeout_seconds=timeout_s,
                allow_watch_bookmarks=True,
            ):
                raw = self._raw(event["object"])
                if event["type"] == "ERROR":
                    if raw.get("code") == 410:
                        self.resource_version = None  # expired: list again
                        return
                    # any other error: run() logs it and starts over from a fresh list
                    raise RuntimeError(f"watching {self.what}: {raw.get('message', raw)}")
                meta = raw.get("metadata") or {}
                # BOOKMARK events only move the resourceVersion on
                self.resource_version = meta.get("resourceVersion", self.resource_version)
                with self._lock:
                    if event["type"] == "DELETED":
                        self.items.pop(str(meta.get("name")), None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self.items[meta["name"]] = self.to_value(raw)
                if self._stop.is_set():
                    return
        except ApiException as e:
            if e.status == 410:  # the same expiry, reported by the client instead of as an event
                self.resource_version = None
                return
            raise

    def run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                self.watch_once(watch.Watch())
            except Exception:  # keep watching; the error is logged with its traceback
                self.log.exception("watching %s failed; re-listing", self.what)
                self.resource_version = None
                self._stop.wait(2)

    def stop(self) -> None:
        self._stop.set()
