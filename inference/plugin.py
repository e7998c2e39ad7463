"""vLLM general plugin entry point (``vllm.general_plugins``: ``hone``). vLLM calls
``register`` in each of its processes; the resolver is only used by the API server's."""

from __future__ import annotations


def register() -> None:
    import os

    if "HONE_STORAGE_URL" not in os.environ:
        return  # a vLLM not started by hone: nothing to serve from
    from vllm.platforms import current_platform

    if current_platform.is_cpu():  # base-model tokens must not get the last adapter slot's LoRA
        from inference import cpu_lora_fix

        cpu_lora_fix.apply()
    from vllm.lora.resolver import LoRAResolverRegistry

    from inference.resolver import HoneLoRAResolver

    LoRAResolverRegistry.register_resolver("hone", HoneLoRAResolver.from_env())
