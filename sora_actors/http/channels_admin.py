"""``/api/admin/channels``: the upstream channels as admins see them, and a test call.

Admins list, create, change and delete channels at run time; every instance applies a
change within a second (`sora_actors.channel_registry` says how, and what happens to the
tasks of a changed or deleted channel). Keys and webhook secrets are write-only. A test
call that succeeds enables a channel a 401/403 had disabled (on the instance that answers).
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from ..channel_registry import ChannelConflict, ChannelInvalid, parse
from ..settings import ChannelSettings
from ..storage import Activity
from ..upstream import UpstreamError
from .apidoc import documented
from .context import client_address, ctx, require_admin
from .envelope import ApiError, ok
from .health import channel_report
from .schemas import (
    AdminChannelEnvelope,
    AdminChannelsEnvelope,
    ChannelBodyDoc,
    ChannelDeletedEnvelope,
    ChannelTestEnvelope,
)

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
    registry = ctx().services.runtime.channel_registry
    return ok({"channels": [_view(spec) for spec in registry.specs.values()]})


def _view(spec: ChannelSettings) -> dict[str, object]:
    """A channel's settings (keys masked) and its health on this instance."""
    channel = ctx().services.runtime.channels.named(spec.name)
    assert channel is not None, "every effective channel is in the ChannelSet"
    return {**_spec(spec), "health": channel_report(channel.statistics())}


def _activity(action: str, admin_id: str, details: dict[str, object]) -> Activity:
    return Activity(action, admin_id, details, client_address(), request.headers.get("User-Agent"))


CHANGE_ERRORS = {403: ("FORBIDDEN",), 400: ("VALIDATION_ERROR",)}


@blueprint.post("")
@documented(
    AdminChannelEnvelope,
    status=201,
    auth=True,
    json_body=ChannelBodyDoc,
    errors={**CHANGE_ERRORS, 409: ("CHANNEL_EXISTS",)},
)
async def create_channel() -> Response:
    """Add a channel; new tasks may be routed to it within a second on every instance."""
    _, admin = await require_admin()
    try:
        spec = parse(await request.get_json())
    except ChannelInvalid as invalid:
        raise ApiError(400, "VALIDATION_ERROR", str(invalid), details=invalid.problems) from None
    details: dict[str, object] = {"channel": spec.name, "dialect": spec.dialect}
    try:
        spec = await ctx().services.runtime.channel_registry.create(
            spec, _activity("admin_channel_create", admin.id, details)
        )
    except ChannelConflict as conflict:
        raise ApiError(409, conflict.code, str(conflict)) from None
    return ok(_view(spec), status=201, message="Channel created.")


@blueprint.put("/<name>")
@documented(
    AdminChannelEnvelope,
    auth=True,
    json_body=ChannelBodyDoc,
    errors={**CHANGE_ERRORS, 404: ("CHANNEL_NOT_FOUND",)},
)
async def update_channel(name: str) -> Response:
    """Change some of a channel's fields (omitted keys stay); its running tasks use the new
    settings from their next call."""
    _, admin = await require_admin()
    raw = await request.get_json()
    try:
        spec = await ctx().services.runtime.channel_registry.update(
            name, raw, _activity("admin_channel_update", admin.id, {"channel": name})
        )
    except KeyError:
        raise _not_found(name) from None
    except ChannelInvalid as invalid:
        raise ApiError(400, "VALIDATION_ERROR", str(invalid), details=invalid.problems) from None
    return ok(_view(spec), message="Channel saved.")


@blueprint.delete("/<name>")
@documented(
    ChannelDeletedEnvelope,
    auth=True,
    errors={403: ("FORBIDDEN",), 404: ("CHANNEL_NOT_FOUND",), 409: ("CHANNEL_LAST",)},
)
async def delete_channel(name: str) -> Response:
    """Take a channel out of routing (a settings-file channel too, until created again);
    the tasks already on it keep using it until they end."""
    _, admin = await require_admin()
    try:
        await ctx().services.runtime.channel_registry.delete(
            name, _activity("admin_channel_delete", admin.id, {"channel": name})
        )
    except KeyError:
        raise _not_found(name) from None
    except ChannelConflict as conflict:
        raise ApiError(409, conflict.code, str(conflict)) from None
    return ok({"name": name, "deleted": True}, message="Channel deleted.")


def _not_found(name: str) -> ApiError:
    return ApiError(404, "CHANNEL_NOT_FOUND", f"No channel named {name!r}.")


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
        raise _not_found(name)
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
