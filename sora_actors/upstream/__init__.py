"""The upstream video API: one Provider interface and the OpenAI-compatible HTTP adapter.

Actors depend on `Provider` only; which upstream sits behind it (OpenAI, a compatible
gateway, or the fake upstream's simulator or `MemoryProvider`, in `.fake`) is
configuration.
"""

from .config import AuthStyle, RetryPolicy, UpstreamConfig
from .limiter import Limiter
from .mapping import map_model, map_seconds, normalize_status
from .openai_compat import OpenAICompatProvider
from .provider import (
    ContentVariant,
    ErrorKind,
    ImageInput,
    JobPage,
    Provider,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
    UpstreamStatus,
)

__all__ = [
    "AuthStyle",
    "ContentVariant",
    "ErrorKind",
    "ImageInput",
    "JobPage",
    "Limiter",
    "OpenAICompatProvider",
    "Provider",
    "RetryPolicy",
    "SubmitRequest",
    "UpstreamConfig",
    "UpstreamError",
    "UpstreamJob",
    "UpstreamStatus",
    "map_model",
    "map_seconds",
    "normalize_status",
]
