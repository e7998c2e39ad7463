"""The inference gateway: authenticated, project-scoped proxying of /v1/chat/completions and
/v1/completions to the vLLM upstreams of each base model."""
