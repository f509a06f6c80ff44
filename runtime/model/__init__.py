"""The model seam: protocol, OpenAI-compatible client, settings and server quirks."""

from runtime.model.client import (
    ModelClient,
    ModelError,
    ModelTurn,
    OpenAICompatibleClient,
    RetryPolicy,
    Usage,
)
from runtime.model.settings import SamplingSettings

__all__ = [
    "ModelClient",
    "ModelError",
    "ModelTurn",
    "OpenAICompatibleClient",
    "RetryPolicy",
    "SamplingSettings",
    "Usage",
]
