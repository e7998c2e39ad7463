"""Job-data validation: streaming JSONL checks against the OpenAI fine-tuning formats.

``validate_dataset`` reads a training or validation file once, in chunks, checks every line
against the supervised (chat) or DPO (preference) format and the base model's token limit,
and raises ``DataValidationError`` (OpenAI job error ``code``/``message``/``param``) on the
first problem, or returns ``DatasetStats``. The service never imports torch: token counts come
from a ``TokenCounter`` such as ``HFTokenCounter`` (tokenizer + chat template only).
"""

from .dataset import DatasetStats, validate_dataset
from .errors import DataValidationError
from .tokens import Conversation, HFTokenCounter, RenderError, TokenCounter, TokenCounters, TokenizerUnavailable

__all__ = [
    "Conversation",
    "DataValidationError",
    "DatasetStats",
    "HFTokenCounter",
    "TokenCounters",
    "RenderError",
    "TokenCounter",
    "TokenizerUnavailable",
    "validate_dataset",
]
