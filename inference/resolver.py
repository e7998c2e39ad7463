"""The hone LoRA resolver for vLLM: maps a fine-tuned model name to its verified adapter in
the local cache (``inference.cache``), or refuses it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
from vllm.logger import init_logger
from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolver

from contract.blobstore import open_blobstore
from inference.cache import AdapterCache, AdapterRefused
from inference.launch import API_KEY_ENV

log = init_logger(__name__)  # vLLM's log format and handlers


class HoneLoRAResolver(LoRAResolver):
    def __init__(self, cache: AdapterCache) -> None:
        self.cache = cache

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
        try:
            path = await asyncio.to_thread(self.cache.fetch, lora_name)
        except AdapterRefused as e:
            log.warning("hone resolver refused %r: %s", lora_name, e)
            return None
        # vLLM's model registry replaces lora_int_id with its own counter; it must only be > 0 here.
        return LoRARequest(lora_name=lora_name, lora_int_id=1, lora_path=str(path), base_model_name=base_model_name)

    @classmethod
    def from_env(cls) -> HoneLoRAResolver:
        """Configured by the launcher: HONE_STORAGE_URL, HONE_BASE_MODEL, HONE_ADAPTER_CACHE_DIR,
        HONE_ADAPTER_CACHE_BYTES and HONE_VLLM_PORT (to tell vLLM to forget evicted adapters, with
        the server's VLLM_API_KEY when it has one)."""
        port = os.environ.get("HONE_VLLM_PORT")
        key = os.environ.get(API_KEY_ENV)  # the server's own key: its /v1 routes require it
        headers = {"authorization": f"Bearer {key}"} if key else {}

        def forget(name: str) -> None:
            if port:
                try:
                    httpx.post(
                        f"http://127.0.0.1:{port}/v1/unload_lora_adapter",
                        json={"lora_name": name},
                        headers=headers,
                        timeout=10,
                    )
                except httpx.HTTPError as e:
                    log.warning("could not unload evicted adapter %s: %s", name, e)

        cache = AdapterCache(
            open_blobstore(os.environ["HONE_STORAGE_URL"]),
            Path(os.environ["HONE_ADAPTER_CACHE_DIR"]),
            os.environ["HONE_BASE_MODEL"],
            int(os.environ.get("HONE_ADAPTER_CACHE_BYTES", str(20 << 30))),
            on_evict=forget if port else None,
        )
        return cls(cache)
