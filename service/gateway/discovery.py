"""Where a base model's vLLM replicas are: a registry of upstream sources by name.

``static``: the catalog entry's ``upstreams`` (one URL, e.g. a ClusterIP Service, or the
local servers of ``hone up``). ``kubernetes``: every ready pod behind the base model's headless
Service, from its EndpointSlices (list, then watch from the list's resourceVersion, re-listing
on 410 Gone), so the gateway's rendezvous hashing picks one replica per adapter and keeps that
choice while other pods come and go. Until a base model has a ready pod discovered, its
static ``upstreams`` are used.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Protocol, Self

if TYPE_CHECKING:
    from service.catalog.catalog import BaseModelEntry
    from service.config import Settings

log = logging.getLogger(__name__)

DISCOVERY: dict[str, str] = {
    "static": "service.gateway.discovery:StaticUpstreams",
    "kubernetes": "service.gateway.discovery:EndpointSliceUpstreams",
}


class UpstreamSource(Protocol):
    def upstreams(self, entry: BaseModelEntry) -> list[str]:
        """The base URLs of the vLLM servers of ``entry`` that may take a request now."""

    def close(self) -> None:
        """Stop watching (if anything is watched)."""


def build_upstream_source(settings: Settings) -> UpstreamSource:
    module, _, cls = DISCOVERY[settings.gateway.discovery].partition(":")
    source: UpstreamSource = getattr(importlib.import_module(module), cls).from_settings(settings)
    return source


class StaticUpstreams:
    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def upstreams(self, entry: BaseModelEntry) -> list[str]:
        return list(entry.upstreams)

    def close(self) -> None:
        pass


def slice_upstreams(raw: dict[str, Any], model_label: str, port_name: str) -> tuple[str | None, list[str]]:
    """An EndpointSlice (as a dict) -> (its base model, the URLs of its ready endpoints)."""
    base = ((raw.get("metadata") or {}).get("labels") or {}).get(model_label)
    port = next((p.get("port") for p in raw.get("ports") or [] if p.get("name") == port_name), None)
    if base is None or port is None:
        return base, []
    urls = []
    for endpoint in raw.get("endpoints") or []:
        conditions = endpoint.get("conditions") or {}
        if conditions.get("ready") is False or conditions.get("terminating") is True:
            continue  # not ready, or on its way out: never picked for a new request
        for address in endpoint.get("addresses") or []:
            host = f"[{address}]" if ":" in address else address
            urls.append(f"http://{host}:{port}")
    return base, urls


class EndpointSliceUpstreams:
    """List-then-watch cache of the vLLM EndpointSlices (``discovery.k8s.io/v1``)."""

    def __init__(self, discovery_api: Any, namespace: str, selector: str, model_label: str, port_name: str) -> None:
        self.api, self.namespace, self.selector = discovery_api, namespace, selector
        self.model_label, self.port_name = model_label, port_name
        self.slices: dict[str, tuple[str | None, list[str]]] = {}  # slice name -> (base model, urls)
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, start_watch: bool = True) -> Self:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        g = settings.gateway
        source = cls(client.DiscoveryV1Api(client.ApiClient()), g.namespace, g.selector, g.model_label, g.port_name)
        if start_watch:
            source.start()
        return source

    def start(self) -> None:
        threading.Thread(target=self.run, name="hone-upstream-watch", daemon=True).start()

    def upstreams(self, entry: BaseModelEntry) -> list[str]:
        with self._lock:
            found = {url for base, urls in self.slices.values() if base == entry.name for url in urls}
        return sorted(found) or list(entry.upstreams)

    def _raw(self, obj: Any) -> dict[str, Any]:
        return obj if isinstance(obj, dict) else self.api.api_client.sanitize_for_serialization(obj)

    def relist(self) -> None:
        listing = self.api.list_namespaced_endpoint_slice(self.namespace, label_selector=self.selector)
        slices = {}
        for item in listing.items:
            raw = self._raw(item)
            slices[raw["metadata"]["name"]] = slice_upstreams(raw, self.model_label, self.port_name)
        with self._lock:
            self.slices = slices
        self.resource_version = listing.metadata.resource_version
        self.synced.set()

    def watch_once(self, watch: Any, timeout_s: int = 60) -> None:
        """One watch call from the current resourceVersion; re-list if it is too old."""
        from kubernetes.client.exceptions import ApiException

        if self.resource_version is None:
            self.relist()
        try:
            for event in watch.stream(
                self.api.list_namespaced_endpoint_slice,
                self.namespace,
                label_selector=self.selector,
                resource_version=self.resource_version,
                timeout_seconds=timeout_s,
                allow_watch_bookmarks=True,
            ):
                raw = self._raw(event["object"])
                if event["type"] == "ERROR":
                    if raw.get("code") == 410:
                        self.resource_version = None  # expired: list again
                        return
                    raise RuntimeError(f"watching EndpointSlices: {raw.get('message', raw)}")
                meta = raw.get("metadata") or {}
                self.resource_version = meta.get("resourceVersion", self.resource_version)
                with self._lock:
                    if event["type"] == "DELETED":
                        self.slices.pop(str(meta.get("name")), None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self.slices[meta["name"]] = slice_upstreams(raw, self.model_label, self.port_name)
                if self._stop.is_set():
                    return
        except ApiException as e:
            if e.status == 410:
                self.resource_version = None
                return
            raise

    def run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                self.watch_once(watch.Watch())
            except Exception:  # keep watching; the error is logged with its traceback
                log.exception("watching the vLLM EndpointSlices failed; re-listing")
                self.resource_version = None
                self._stop.wait(2)

    def close(self) -> None:
        self._stop.set()
