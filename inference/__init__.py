"""The vLLM side of hone: a LoRA resolver plugin that serves fine-tuned models from the blob
store, and the launcher that starts a vLLM OpenAI server per catalog base model. Imports the
``contract`` package only, never ``service`` or ``trainer``."""
