"""``POST /api/upstream/webhooks/<channel>``: where upstreams call back when a job ends.

No login: the Standard Webhooks signature with the channel's secret is the authentication
(see `sora_actors.upstream.webhooks`). Answers fast; the actor's confirming poll happens
after the answer.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint, Response, request

from ..upstream.webhooks import WebhookRefused
from ..webhook_inbox import UnknownChannel
from .apidoc import documented
from .context import ctx
from .envelope import ApiError, ok
from .schemas import Ok, Out

blueprint = Blueprint("webhooks", __name__, url_prefix="/api/upstream")


class WebhookReceiptOut(Out):
    event: str
    video_id: str | None
    delivered: bool


class WebhookReceiptEnvelope(Ok[WebhookReceiptOut]):
    pass


class WebhookHeaders(BaseModel):
    webhook_id: str | None = Field(default=None, description="the event's id (replays refused)")
    webhook_timestamp: str | None = Field(
        default=None, description="Unix seconds; more than 5 minutes away from now is refused"
    )
    webhook_signature: str | None = Field(
        default=None,
        description="space-separated v1,<base64 HMAC-SHA256 of id.timestamp.body>",
    )


@blueprint.post("/webhooks/<channel>")
@documented(
    WebhookReceiptEnvelope,
    headers=WebhookHeaders,
    errors={
        400: (
            "WEBHOOK_HEADERS_MISSING",
            "WEBHOOK_TIMESTAMP_INVALID",
            "WEBHOOK_PAYLOAD_INVALID",
        ),
        401: ("WEBHOOK_SIGNATURE_INVALID", "WEBHOOK_TIMESTAMP_OUT_OF_RANGE"),
        404: ("WEBHOOK_CHANNEL_UNKNOWN",),
        409: ("WEBHOOK_REPLAYED",),
        413: ("PAYLOAD_TOO_LARGE",),
    },
)
async def receive(channel: str) -> Response:
    """An upstream's signed job end, in the channel's dialect (an OpenAI ``video.completed`` /
    ``video.failed`` event, or Replicate's prediction object): the task's actor polls once to
    confirm it."""
    body = await request.get_data(cache=False)
    assert isinstance(body, bytes)
    headers = {key.lower(): value for key, value in request.headers.items()}
    inbox = ctx().services.runtime.webhooks
    try:
        receipt = await inbox.receive(channel, headers, body)
    except UnknownChannel:
        raise ApiError(
            404, "WEBHOOK_CHANNEL_UNKNOWN", f"No channel {channel!r} takes webhooks."
        ) from None
    except WebhookRefused as refused:
        raise ApiError(refused.status, refused.code, refused.message) from None
    return ok(
        WebhookReceiptOut(
            event=receipt.event, video_id=receipt.video_id, delivered=receipt.delivered
        )
    )
