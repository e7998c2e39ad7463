"""vLLM general plugin entry point (``vllm.general_plugins``: ``hone``). vLLM calls
``register`` in each of its processes; the resolver is only used by the API server's."""

from __future__ import annotations


def register() -> None:
    import os

    if "HONE_STORAGE_URL" not in os.environ:
        return  # a vLLM not started by hone: nothing to serve from
    from vllm.lora.resolver import LoRAResolverRegistry

    from inference.resolver import HoneLoRAResolver

    LoRAResolverRegistry.register_resolver("hone", HoneLoRAResolver.from_env())
