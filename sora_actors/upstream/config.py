"""Configuration of the client side of the upstream adapter."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .mapping import DEFAULT_MODEL_MAP, OPENAI_SECONDS

# How the key travels: `Authorization: Bearer k` (OpenAI, Replicate), the bare key in
# Authorization (some gateways), an `x-api-key` header, or `Authorization: Token k`.
AuthStyle = Literal["bearer", "bare", "x-api-key", "token"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter for idempotent calls (polls, downloads, lists, deletes).

    `create_attempts` bounds retries of creates, which happen only after a
    definite "not created" answer (429, or a 5xx carrying an API error body).
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    create_attempts: int = 3

    def backoff(self, attempt: int, rand: float) -> float:
        """Delay before retry number `attempt` (1-based) given a uniform `rand` in [0, 1)."""
        cap = min(self.max_delay_s, math.ldexp(self.base_delay_s, attempt - 1))
        # "equal jitter": never zero, so a hot loop cannot form
        return cap / 2 + rand * cap / 2


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Everything needed to talk to one OpenAI-compatible upstream with one key."""

    base_url: str
    api_key: str
    auth_style: AuthStyle = "bearer"
    model_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODEL_MAP))
    allowed_seconds: tuple[int, ...] = OPENAI_SECONDS
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    create_timeout_s: float = 60.0
    max_requests_per_second: float | None = 2.0
    max_concurrent_jobs: int | None = 5
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    download_chunk_size: int = 64 * 1024
    max_connections: int = 20
    # Sent as User-Agent: names the sora-actors instance in the upstream's logs.
    user_agent: str = "sora-actors"
    # Our webhook endpoint for this channel, sent with each create where the dialect takes
    # one (Replicate); None: no webhooks asked for.
    webhook_url: str | None = None

    def auth_header(self) -> str:
        """Value of the Authorization header for this auth style."""
        return self.api_key if self.auth_style == "bare" else f"Bearer {self.api_key}"

    def auth_headers(self) -> dict[str, str]:
        """The header(s) that carry the key in this auth style."""
        if self.auth_style == "x-api-key":
            return {"x-api-key": self.api_key}
        if self.auth_style == "token":
            return {"authorization": f"Token {self.api_key}"}
        return {"authorization": self.auth_header()}
