"""The upstream video API: one Provider interface, HTTP adapter, in-memory twin, simulator.

Actors depend on `Provider` only; which upstream sits behind it (OpenAI,
a compatible gateway, the simulator or `MemoryProvider`) is configuration.
"""

from .config import AuthStyle, RetryPolicy, UpstreamConfig
from .engine import DurationDistribution, FaultRates, KeyLimits, SimulatorConfig
from .limiter import Limiter
from .mapping import is_policy_code, map_model, map_seconds, may_have_created, normalize_status
from .memory import MemoryProvider
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

__all__ = [
    "AuthStyle",
    "ContentVariant",
    "DurationDistribution",
    "ErrorKind",
    "FaultRates",
    "ImageInput",
    "JobPage",
    "KeyLimits",
    "Limiter",
    "MemoryProvider",
    "OnSend",
    "OpenAICompatProvider",
    "Provider",
    "RetryPolicy",
    "SimulatorConfig",
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
