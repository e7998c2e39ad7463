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

from service.kube_informer import Informer

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


class EndpointSliceUpstreams(Informer[tuple[str | None, list[str]]]):
    """List-then-watch cache of the vLLM EndpointSlices (``discovery.k8s.io/v1``): slice name ->
    (base model, ready URLs)."""

    def __init__(self, discovery_api: Any, namespace: str, selector: str, model_label: str, port_name: str) -> None:
        super().__init__(
            discovery_api.list_namespaced_endpoint_slice,
            namespace,
            selector,
            sanitize=discovery_api.api_client.sanitize_for_serialization,
            to_value=lambda raw: slice_upstreams(raw, model_label, port_name),
            what="the vLLM EndpointSlices",
            log=log,
        )
        self.api = discovery_api

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
        found = {url for base, urls in self.values() if base == entry.name for url in urls}
        return sorted(found) or list(entry.upstreams)

    def close(self) -> None:
        self.stop()
