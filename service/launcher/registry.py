"""Launcher backends by name: an import path each, so nothing is imported (the kubernetes
client, say) unless it is configured, and a new backend is one module plus one line here and
its config in ``service/launcher/config.py`` (docs/extending.md)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.config import Settings
    from service.launcher.base import Launcher

BACKENDS: dict[str, str] = {
    "local": "service.launcher.local:LocalLauncher",
    "kubernetes": "service.launcher.kubernetes:KubernetesLauncher",
}
NO_LAUNCHER = "none"


def build_launcher(settings: Settings) -> Launcher | None:
    """The configured backend, built from its own config section; None for ``none``."""
    name = settings.launcher.backend
    if name == NO_LAUNCHER:
        return None
    module, _, cls = BACKENDS[name].partition(":")
    launcher: Launcher = getattr(importlib.import_module(module), cls).from_settings(settings)
    return launcher
