"""The upstream video API: one Provider interface and its HTTP adapters (OpenAI-compatible,
Replicate).

Actors depend on `Provider` only; which upstream sits behind it (OpenAI, a compatible
gateway, or the fake upstream's simulator or `MemoryProvider`, in `.fake`) is
configuration.
"""

from .config import AuthStyle, RetryPolicy, UpstreamConfig
from .limiter import Limiter
from .mapping import is_policy_code, map_model, map_seconds, may_have_created, normalize_status
from .openai_compat import OpenAICompatProvider
from .provider import (
    ContentVariant,
    ErrorKind,
    ImageInput,
    JobPage,
    OnSend,
    Provider,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
    UpstreamStatus,
)
from .replicate import ReplicateProvider

__all__ = [
    "AuthStyle",
    "ContentVariant",
    "ErrorKind",
    "ImageInput",
    "JobPage",
    "Limiter",
    "OnSend",
    "OpenAICompatProvider",
    "Provider",
    "ReplicateProvider",
    "RetryPolicy",
    "SubmitRequest",
    "UpstreamConfig",
    "UpstreamError",
    "UpstreamJob",
    "UpstreamStatus",
    "is_policy_code",
    "map_model",
    "map_seconds",
    "may_have_created",
    "normalize_status",
]
