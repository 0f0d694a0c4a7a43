"""``/api/admin/channels``: the upstream channels as admins see them, and a test call.

Read-only for now: channels come from the settings file. A test call that succeeds
enables a channel a 401/403 had disabled (on the instance that answers the request).
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from ..settings import ChannelSettings
from ..storage import Activity
from ..upstream import UpstreamError
from .apidoc import documented
from .context import client_address, ctx, require_admin
from .envelope import ApiError, ok
from .health import channel_report
from .schemas import AdminChannelsEnvelope, ChannelTestEnvelope

blueprint = Blueprint("channels_admin", __name__, url_prefix="/api/admin/channels")


def masked(key: str) -> str:
    """Keys are write-only: only their last 4 characters are ever shown."""
    return "..." + key[-4:] if len(key) > 8 else "..."


def _spec(spec: ChannelSettings) -> dict[str, object]:
    return {
        "name": spec.name,
        "dialect": spec.dialect,
        "baseUrl": spec.base_url,
        "keys": [masked(key) for key in spec.api_keys],
        "authStyle": spec.auth_style,
        "modelMap": dict(spec.model_map),
        "models": list(spec.models),
        "sizes": list(spec.sizes),
        "durations": list(spec.durations),
        "priority": spec.priority,
        "weight": spec.weight,
        "maxConcurrentJobs": spec.max_concurrent_jobs,
        "maxRequestsPerSecond": spec.max_requests_per_second,
        "enabled": spec.enabled,
        "webhookSecretSet": bool(spec.webhook_secret),
    }


@blueprint.get("")
@documented(AdminChannelsEnvelope, auth=True, errors={403: ("FORBIDDEN",)})
async def list_channels() -> Response:
    """Every upstream channel: its settings (keys masked) and its health."""
    await require_admin()
    runtime = ctx().services.runtime
    health = {c.name: channel_report(c) for c in runtime.channels.statistics()}
    return ok(
        {
            "channels": [
                {**_spec(spec), "health": health[spec.name]} for spec in runtime.channel_specs
            ]
        }
    )


@blueprint.post("/<name>/test")
@documented(
    ChannelTestEnvelope, auth=True, errors={403: ("FORBIDDEN",), 404: ("CHANNEL_NOT_FOUND",)}
)
async def test_channel(name: str) -> Response:
    """One test call to the channel's upstream (a list of one job): does it answer, and how
    fast. A success brings a channel a 401/403 had disabled back."""
    _, admin = await require_admin()
    services = ctx().services
    channel = services.runtime.channels.named(name)
    if channel is None:
        raise ApiError(404, "CHANNEL_NOT_FOUND", f"No channel named {name!r}.")
    was_disabled = channel.disabled_reason is not None
    error: UpstreamError | None = await channel.test()
    latency = channel.statistics().latency_ms or 0.0
    result = {
        "name": name,
        "ok": error is None,
        "latencyMs": latency,
        "status": error.status if error else None,
        "error": f"{error.kind.value}: {error.message}" if error else None,
        "reenabled": was_disabled and error is None,
    }
    await services.storage.accounts.log(
        Activity(
            "admin_channel_test",
            admin.id,
            {"channel": name, "ok": error is None, "reenabled": result["reenabled"]},
            client_address(),
            request.headers.get("User-Agent"),
        )
    )
    return ok(result)
