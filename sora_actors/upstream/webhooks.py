"""Upstream webhooks, Standard Webhooks scheme (what OpenAI and Replicate sign with).

A webhook carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``
entries, keyed with the base64-decoded part of the ``whsec_...`` secret. What the body says
depends on the channel's dialect (`PARSERS`): OpenAI sends events ``video.completed`` and
``video.failed`` with ``data.id`` the video's id; Replicate sends the prediction object itself
(``id``, ``status`` succeeded / failed / canceled). Both become the same `WebhookEvent`.

`sign` is what an upstream (our simulator) does; `WebhookVerifier` checks signature,
timestamp and replays. A verified webhook is still only a hint: the actor polls to confirm.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300  # accepted clock difference either way (the scheme's 5 minutes)
EVENTS = frozenset({"video.completed", "video.failed"})


class WebhookRefused(Exception):
    """Why a webhook is refused: HTTP ``status`` and machine ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret. Raises ValueError for a malformed one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if len(key) < 16:
        raise ValueError("a webhook secret holds at least 16 bytes")
    return key


def signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1,...`` signature of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three headers an upstream sends with ``body``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": signature(secret_key(secret), msg_id, stamp, body),
    }


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified webhook: which upstream job ended, and how."""

    id: str  # webhook-id
    type: str  # video.completed | video.failed
    job_id: str


class ReplayGuard:
    """The webhook-ids seen within the tolerance window, in bounded memory: beyond
    ``capacity`` the oldest are forgotten early (a replay of one of those is let through, and
    only costs the actor one confirming poll)."""

    def __init__(self, window_s: float = 2 * TOLERANCE_S, capacity: int = 100_000) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, msg_id: str, now: float) -> bool:
        """Remember ``msg_id``; False when it was seen within the window."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if at > now - self._window_s and len(self._seen) < self._capacity:
                break
            del self._seen[oldest]
        if msg_id in self._seen:
            return False
        self._seen[msg_id] = now
        return True


Parse = Callable[[str, bytes], WebhookEvent]


class WebhookVerifier:
    """Checks one channel's webhooks: signature (constant time), timestamp, replay; then
    reads the body with ``parse`` (the channel's dialect, see `PARSERS`)."""

    def __init__(
        self,
        secret: str,
        *,
        tolerance_s: float = TOLERANCE_S,
        replays: ReplayGuard | None = None,
        clock: Callable[[], float] = time.time,
        parse: Parse | None = None,
    ) -> None:
        self._key = secret_key(secret)
        self._parse = parse or parse_openai
        self._tolerance_s = tolerance_s
        self._replays = replays or ReplayGuard(2 * tolerance_s)
        self._clock = clock

    def verify(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """The event, or WebhookRefused (400 malformed, 401 forged or stale, 409 replay)."""
        msg_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (msg_id and stamp and signatures):
            raise WebhookRefused(
                400,
                "WEBHOOK_HEADERS_MISSING",
                "webhook-id, webhook-timestamp and webhook-signature are required.",
            )
        try:
            sent_at = int(stamp)
        except ValueError:
            raise WebhookRefused(
                400, "WEBHOOK_TIMESTAMP_INVALID", "webhook-timestamp is not Unix seconds."
            ) from None
        expected = signature(self._key, msg_id, stamp, body).encode()
        offered = [part.encode() for part in signatures.split(" ") if part.startswith("v1,")]
        # Every offered signature is compared, each in constant time.
        if not any([hmac.compare_digest(expected, sig) for sig in offered]):
            raise WebhookRefused(
                401, "WEBHOOK_SIGNATURE_INVALID", "The webhook signature does not match."
            )
        now = self._clock()
        if abs(now - sent_at) > self._tolerance_s:
            raise WebhookRefused(
                401,
                "WEBHOOK_TIMESTAMP_OUT_OF_RANGE",
                f"The webhook timestamp is more than {self._tolerance_s:g} s away from now.",
            )
        event = self._parse(msg_id, body)
        if not self._replays.first_time(msg_id, now):
            raise WebhookRefused(
                409, "WEBHOOK_REPLAYED", f"The webhook {msg_id} was received already."
            )
        return event


def _payload_invalid(expected: str) -> WebhookRefused:
    return WebhookRefused(400, "WEBHOOK_PAYLOAD_INVALID", f"The webhook body is not {expected}.")


def _json_object(body: bytes, expected: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise _payload_invalid(expected) from None
    if not isinstance(doc, dict):
        raise _payload_invalid(expected)
    return doc


def parse_openai(msg_id: str, body: bytes) -> WebhookEvent:
    """An OpenAI event: ``type`` and ``data.id``."""
    expected = "an event with data.id"
    doc = _json_object(body, expected)
    kind, data = doc.get("type"), doc.get("data")
    job_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(kind, str) or not isinstance(job_id, str) or not job_id:
        raise _payload_invalid(expected)
    return WebhookEvent(msg_id, kind, job_id)


# A Replicate prediction's final statuses as our events (a cancel ends the job too: the
# confirming poll tells the actor how).
REPLICATE_ENDS: Mapping[str, str] = {
    "succeeded": "video.completed",
    "failed": "video.failed",
    "canceled": "video.failed",
    "aborted": "video.failed",
}


def parse_replicate(msg_id: str, body: bytes) -> WebhookEvent:
    """A Replicate prediction object: ``id`` and ``status``. A status that is not an end
    (``starting``, ``processing``: webhook_events_filter not honoured) becomes an event
    outside `EVENTS`, which is acknowledged and ignored."""
    expected = "a prediction with id and status"
    doc = _json_object(body, expected)
    job_id, status = doc.get("id"), doc.get("status")
    if not isinstance(job_id, str) or not job_id or not isinstance(status, str) or not status:
        raise _payload_invalid(expected)
    return WebhookEvent(msg_id, REPLICATE_ENDS.get(status, f"prediction.{status}"), job_id)


# Channel dialect -> how its webhook bodies read.
PARSERS: Mapping[str, Parse] = {"openai": parse_openai, "replicate": parse_replicate}


def event_body(event_id: str, kind: str, job_id: str, created_at: int) -> bytes:
    """An OpenAI-style event body (what the simulator sends)."""
    doc = {
        "id": event_id,
        "object": "event",
        "created_at": created_at,
        "type": kind,
        "data": {"id": job_id},
    }
    return json.dumps(doc, separators=(",", ":")).encode()
