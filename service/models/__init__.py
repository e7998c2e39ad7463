"""Models: the base-model catalog plus the project's fine-tuned and checkpoint models."""
