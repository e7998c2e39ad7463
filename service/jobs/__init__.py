"""Fine-tuning jobs: creation, state transitions, events, checkpoints and naming."""
