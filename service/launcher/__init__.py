"""Launchers run trainer attempts: the protocol here, one module per backend (local
subprocess, Kubernetes Job) as they arrive."""

from service.launcher.base import AttemptState, Launcher

__all__ = ["AttemptState", "Launcher"]
