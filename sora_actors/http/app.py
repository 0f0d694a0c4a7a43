"""The Quart-Trio application: a thin layer that routes requests to services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from quart import request
from quart_schema import QuartSchema
from quart_trio import QuartTrio
from quart_trio.wrappers.request import TrioRequest

from ..services import Services
from . import (
    accounts,
    admin_licences,
    admin_users,
    apidoc,
    apikeys,
    channels_admin,
    console,
    cors,
    errors,
    files,
    health,
    licences,
    links,
    observe,
    operations,
    ratelimit,
    relay,
    sse,
    tasks,
    webhooks,
    ws,
)
from .context import EXTENSION_KEY, HttpContext, ctx
from .envelope import ApiError
from .gate import BusyGate, default_capacity
from .listener import Connections
from .proxies import TrustedProxies, parse_networks
from .security import Passwords, Tokens
from .strictjson import JsonRefused, read_json
from .throttle import LoginThrottle
from .wslimits import WsLimits

F = TypeVar("F", bound=Callable[..., Any])
_LARGE_BODY = "_sora_large_body"


def large_body(view: F) -> F:
    """Mark a route that may receive up to ``max_body_bytes`` (others: ``max_json_body_bytes``)."""
    setattr(view, _LARGE_BODY, True)
    return view


class SoraRequest(TrioRequest):
    """Requests whose JSON is read by `strictjson` (bounded depth, no duplicate keys) and
    whose JSON problems are reported in the envelope, not as HTML 400s."""

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not (force or silent or self.is_json):
            raise ApiError(
                415, "UNSUPPORTED_MEDIA_TYPE", "Send a JSON body (Content-Type: application/json)."
            )
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        if not (force or self.is_json):
            return None
        try:
            text = cast(str, await self.get_data(cache=cache, as_text=True))
        except UnicodeDecodeError as error:  # raised while reading the body, before parsing
            if silent:
                return None
            raise ApiError(400, "INVALID_JSON", f"The body is not UTF-8: {error}") from None
        try:
            result = read_json(text, ctx().services.settings.max_json_depth)
        except JsonRefused as refused:
            if not silent:
                raise ApiError(
                    400, refused.code, refused.message, details=refused.details
                ) from None
            result = None
        if cache:
            self._cached_json[silent] = result
        return result


def create_app(services: Services, connections: Connections | None = None) -> QuartTrio:
    """The app; ``connections`` (the listener's) adds its figures to ``/metrics``."""
    settings = services.settings
    app = QuartTrio("sora_actors")
    app.request_class = SoraRequest
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        QUART_SCHEMA_CONVERT_CASING=False,
        # We cancel our own background work; do not let Quart wait 5 s for it.
        BACKGROUND_TASK_SHUTDOWN_TIMEOUT=0,
        JSON_SORT_KEYS=False,
    )
    QuartSchema(
        app,
        info={
            "title": "sora-actors",
            "version": services.version,
            "description": apidoc.API_DESCRIPTION,
        },
        # The stock UI pages load their scripts from a CDN; /docs is ours (apidoc.py).
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        openapi_provider_class=apidoc.SoraOpenAPI,
        security_schemes={
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"}
        },
    )
    app.extensions[EXTENSION_KEY] = context = HttpContext(
        services=services,
        passwords=Passwords(
            settings.bcrypt_rounds,
            BusyGate(
                settings.password_hash_concurrency or default_capacity(),
                settings.password_hash_queue,
            ),
        ),
        tokens=Tokens(settings.jwt_secret, settings.jwt_ttl_seconds),
        login_throttle=LoginThrottle(
            settings.login_max_failures,
            settings.login_window_seconds,
            account_max_failures=settings.login_account_max_failures,
            lockout=settings.login_lockout_seconds,
            lockout_max=settings.login_lockout_max_seconds,
        ),
        registrations=(
            ratelimit.RateLimiter(
                settings.register_max_per_address, settings.register_window_seconds
            )
            if settings.register_max_per_address
            else None
        ),
        proxies=TrustedProxies(parse_networks(settings.trusted_proxies)),
        ws_limits=WsLimits(settings),
    )
    # /ws in front of Quart; the hub serialises each event once, in the WebSocket envelope.
    ws.install(app, context)
    observe.install(
        app, services, connections
    )  # first: its hook names the route before others may fail

    @app.before_request
    async def _body_limit() -> None:
        view = app.view_functions.get(request.endpoint or "")
        limit = (
            settings.max_body_bytes
            if getattr(view, _LARGE_BODY, False)
            else settings.max_json_body_bytes
        )
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(
                413,
                "PAYLOAD_TOO_LARGE",
                f"The request body is larger than {limit} bytes.",
                # The unread body is still on the wire: the connection cannot serve another
                # request (the next one would hang), so it ends with this answer.
                headers={"Connection": "close"},
            )
        # NUL characters in ids or query values can only be mistakes or probes (and
        # PostgreSQL cannot compare them): refuse them before any route sees them.
        if any("\x00" in value for value in (request.view_args or {}).values()) or any(
            "\x00" in value for value in request.args.values()
        ):
            raise ApiError(400, "INVALID_CHARACTER", "NUL characters are not allowed here.")
        # Bodies without a Content-Length (chunked) are cut off at the same limit.
        request.body._max_content_length = limit

    ratelimit.install(app, ratelimit.ApiRateLimits(settings))
    errors.install(app)
    cors.install(app, settings)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(accounts.blueprint)
    app.register_blueprint(apikeys.blueprint)
    app.register_blueprint(admin_users.blueprint)
    app.register_blueprint(tasks.blueprint)
    app.register_blueprint(links.blueprint)
    app.register_blueprint(files.blueprint)
    app.register_blueprint(console.blueprint)
    app.register_blueprint(apidoc.blueprint)
    app.register_blueprint(webhooks.blueprint)
    licences.install(app, settings)
    app.register_blueprint(admin_licences.blueprint)
    app.register_blueprint(sse.blueprint)
    sse.install(services.runtime.hub)
    app.register_blueprint(channels_admin.blueprint)
    app.register_blueprint(operations.blueprint)
    app.register_blueprint(operations.public)
    relay.install(app)
    large_body(tasks.create)
    large_body(relay.create)
    return app
