"""The fake upstream's webhooks: when a job ends, call back (maybe late, maybe never).

`announce_ends` waits for the engine's job ends and hands each one that the engine's seeded
dice do not lose to ``deliver`` after its delay. The simulator delivers by signed HTTP POST
(`http_delivery`), with a body in its dialect (a `Message`: OpenAI's event by default, the
prediction object for Replicate); the polling bench delivers straight to its actors.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import httpx2
import trio

from ..webhooks import event_body, sign
from .engine import Engine, JobState

log = logging.getLogger("sora_actors.simulator")

Deliver = Callable[[JobState], Awaitable[None]]
# (a job's end, the message id) -> (its URL, None for the configured one; the body), or None
# when this job asked for no such webhook.
Message = Callable[[JobState, str], tuple[str | None, bytes] | None]


async def announce_ends(engine: Engine, deliver: Deliver) -> None:
    """Run until cancelled: every job end, once, delivered after its delay unless lost."""
    async with trio.open_nursery() as nursery:
        while True:
            for state in await engine.wait_for_ends():
                delay = engine.webhook_fate()
                if delay is not None:
                    nursery.start_soon(_later, delay, deliver, state)


async def _later(delay: float, deliver: Deliver, state: JobState) -> None:
    await trio.sleep(delay)
    await deliver(state)


def openai_message(engine: Engine) -> Message:
    """OpenAI's ``video.completed`` / ``video.failed`` event, to the configured URL."""

    def message(state: JobState, msg_id: str) -> tuple[str | None, bytes]:
        kind = "video.completed" if state.status == "completed" else "video.failed"
        return None, event_body(msg_id, kind, state.job.id, int(engine.now()))

    return message


def http_delivery(
    engine: Engine, client: httpx2.AsyncClient, message: Message | None = None
) -> Deliver:
    """Deliver by a POST signed with the engine's current webhook settings, the body and
    URL from ``message`` (default: `openai_message`)."""
    message = message or openai_message(engine)

    async def deliver(state: JobState) -> None:
        hooks = engine.webhooks
        if hooks is None:
            return
        msg_id = f"evt_{uuid.uuid4().hex}"
        made = message(state, msg_id)
        if made is None:
            return
        url, body = made[0] or hooks.url, made[1]
        if not url:
            return  # no URL configured, and this job named none
        headers = {**sign(hooks.secret, msg_id, body), "content-type": "application/json"}
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx2.HTTPError as error:
            engine.webhooks_failed += 1
            log.warning("webhook for %s not delivered: %s", state.job.id, error)
            return
        if response.is_success:
            engine.webhooks_sent += 1
        else:
            engine.webhooks_failed += 1
            log.warning("webhook for %s refused: %s", state.job.id, response.status_code)

    return deliver
