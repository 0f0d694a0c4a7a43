"""Upstream webhooks, from a verified request to the task's actor.

Each channel has its own ``whsec_`` secret, and its dialect says how the body reads (an
OpenAI event, a Replicate prediction). A verified ``video.completed`` / ``video.failed`` is
handed to the actor of the task that holds the job, through the supervisor's mailbox: the
actor polls once to confirm (a webhook is a hint, never trusted alone). A task whose actor
runs on another instance is left to that instance's polling, which goes on as the safety
net; a webhook is never forwarded. Any verified webhook also tells `WebhookWatch` that the
channel delivers, which makes polling of its tasks sparse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from .polling import WebhookWatch
from .storage import Storage
from .supervisor import Supervisor
from .task import UpstreamHint
from .upstream.webhooks import EVENTS, PARSERS, WebhookVerifier

log = logging.getLogger("sora_actors.webhooks")


class UnknownChannel(Exception):
    """No channel of that name takes webhooks (none, or no secret configured)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of a verified webhook."""

    event: str
    video_id: str | None  # the task holding the job; None when no task does
    delivered: bool  # handed to its actor here (False: ended, elsewhere, or unknown)


class WebhookInbox:
    def __init__(
        self,
        secrets: Mapping[str, str],
        *,
        storage: Storage,
        supervisor: Supervisor,
        watch: WebhookWatch,
        dialects: Mapping[str, str] | None = None,
    ) -> None:
        """``secrets``: channel name -> ``whsec_`` secret (empty: no webhooks there);
        ``dialects``: channel name -> dialect (absent: ``openai``). Both are read at each
        delivery, so channels admins change at run time take effect at once."""
        self._secrets = secrets
        self._dialects: Mapping[str, str] = dialects if dialects is not None else {}
        self._verifiers: dict[tuple[str, str], WebhookVerifier] = {}  # by secret and dialect
        self._storage = storage
        self._supervisor = supervisor
        self._watch = watch

    async def receive(self, channel: str, headers: Mapping[str, str], body: bytes) -> Receipt:
        """Verify and deliver; raises UnknownChannel or `WebhookRefused`."""
        secret = self._secrets.get(channel)
        if not secret:
            raise UnknownChannel(channel)
        dialect = self._dialects.get(channel, "openai")
        verifier = self._verifiers.get((secret, dialect))
        if verifier is None:
            verifier = WebhookVerifier(secret, parse=PARSERS[dialect])
            self._verifiers[(secret, dialect)] = verifier
        event = verifier.verify(headers, body)
        self._watch.received(channel)
        if event.type not in EVENTS:
            return Receipt(event.type, None, False)
        task = await self._storage.tasks.by_external_id(event.job_id)
        if task is not None and (task.channel or "default") != channel:
            task = None  # another channel's job id: this channel's secret cannot speak for it
        if task is None or task.terminal:
            return Receipt(event.type, task.video_id if task else None, False)
        delivered = self._supervisor.hint(task.video_id, UpstreamHint(event.type))
        log.info(
            "webhook %s for task %s (%s)",
            event.type,
            task.video_id,
            "to its actor" if delivered else "no actor here; polling finds it",
        )
        return Receipt(event.type, task.video_id, delivered)
