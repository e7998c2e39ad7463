"""The gateway's settings, nested in ``Settings.gateway`` (``HONE_GATEWAY__DISCOVERY=kubernetes``).

``discovery`` names how the gateway finds each base model's vLLM replicas
(``service/gateway/discovery.py``): ``static`` uses the catalog entry's ``upstreams``;
``kubernetes`` lists and watches the EndpointSlices labelled for the base model, so each
replica pod is an upstream of its own and rendezvous affinity keeps an adapter on one replica.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator

from service.gateway.discovery import DISCOVERY


class GatewaySettings(BaseModel):
    discovery: str = Field(
        default="static",
        description=f"how the vLLM replicas of a base model are found: one of {sorted(DISCOVERY)}",
    )
    namespace: str = Field(default="hone", description="namespace of the vLLM EndpointSlices (discovery: kubernetes)")
    selector: str = Field(
        default="app.kubernetes.io/name=hone-vllm,service.kubernetes.io/headless",
        description=(
            "label selector of the EndpointSlices to watch: those of each base model's headless Service "
            "(an EndpointSlice carries its Service's labels)"
        ),
    )
    model_label: str = Field(
        default="hone.dev/base-model", description="the label naming an EndpointSlice's catalog base model"
    )
    port_name: str = Field(default="http", description="the Service port that vLLM serves on")
    upstream_api_key: SecretStr | None = Field(
        default=None,
        description=(
            "the key vLLM requires (its VLLM_API_KEY / --api-key); the gateway sends it as a bearer token. "
            "Without it, `hone up` makes one per start for the vLLM servers it runs"
        ),
    )

    @field_validator("discovery")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in DISCOVERY:
            raise ValueError(f"unknown upstream discovery {value!r}; use one of {sorted(DISCOVERY)}")
        return value
