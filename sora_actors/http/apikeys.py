"""``/api/auth/api-keys``: a user's personal API keys (create, list, revoke).

A key is shown once, when it is made; afterwards only its prefix and last four characters.
Keys are managed with a login token: a leaked key must not be able to mint more keys or
hide itself by revoking the others.
"""

from __future__ import annotations

from pydantic import Field
from quart import Blueprint, Response, request
from quart.blueprints import BlueprintSetupState
from quart_schema import validate_request

from ..clock import iso
from ..storage import Activity, User
from ..storage.apikeys import ApiKey, NewApiKey, TooManyKeys
from . import keyauth
from .apidoc import documented
from .context import EXTENSION_KEY, HttpContext, caller, client_address, ctx
from .envelope import ApiError, ok
from .models import Wire
from .schemas import Ok, Out

blueprint = Blueprint("api_keys", __name__, url_prefix="/api/auth/api-keys")


@blueprint.record_once
def _install(state: BlueprintSetupState) -> None:
    context: HttpContext = state.app.extensions[EXTENSION_KEY]
    keys = context.services.storage.api_keys
    state.app.extensions[keyauth.KEY_AUTH] = keyauth.KeyAuth(keys, keyauth.UsageStamps(keys))


class ApiKeyRequest(Wire):
    name: str = Field(default="", max_length=100, description="A label of your choice")


class ApiKeyOut(Out):
    """A key as listed: never the key itself."""

    id: str
    name: str
    prefix: str = Field(description="sk-sora- and the next characters of the key")
    last4: str = Field(description="The key's last four characters")
    created_at: str
    last_used_at: str | None = Field(description="Recorded at most once a minute")
    revoked_at: str | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The whole key: shown this once, never again")


class ApiKeyList(Out):
    keys: list[ApiKeyOut]
    max_active: int = Field(description="How many unrevoked keys a user may hold")


class ApiKeyEnvelope(Ok[ApiKeyOut]):
    pass


class ApiKeyCreatedEnvelope(Ok[ApiKeyCreated]):
    pass


class ApiKeyListEnvelope(Ok[ApiKeyList]):
    pass


def _out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        last4=key.last4,
        created_at=iso(key.created_at) or "",
        last_used_at=iso(key.last_used_at),
        revoked_at=iso(key.revoked_at),
    )


async def _account_holder() -> User:
    """The caller, logged in with a token (not with a key)."""
    if keyauth.bearer_key(request.headers.get("Authorization")) is not None:
        raise ApiError(403, "FORBIDDEN", "Manage API keys after logging in, not with an API key.")
    return (await caller())[1]


def _activity(action: str, user_id: str, **details: object) -> Activity:
    return Activity(
        action, user_id, details or None, client_address(), request.headers.get("User-Agent")
    )


@blueprint.post("")
@documented(
    ApiKeyCreatedEnvelope,
    status=201,
    auth=True,
    json_body=ApiKeyRequest,
    errors={403: ("FORBIDDEN",), 409: ("TOO_MANY_API_KEYS",)},
)
@validate_request(ApiKeyRequest)
async def create_key(data: ApiKeyRequest) -> Response:
    """Make a personal API key (``Authorization: Bearer sk-sora-...``); shown only here."""
    user = await _account_holder()
    key = keyauth.new_key()
    limit = ctx().services.settings.api_keys_per_user
    new = NewApiKey(
        user_id=user.id,
        name=data.name.strip(),
        key_hash=keyauth.key_hash(key),
        prefix=key[: len(keyauth.KEY_PREFIX) + keyauth.SHOWN_PREFIX_CHARS],
        last4=key[-4:],
    )
    try:
        stored = await ctx().services.storage.api_keys.create(
            new, limit, _activity("api_key_create", user.id, name=new.name)
        )
    except TooManyKeys:
        raise ApiError(
            409,
            "TOO_MANY_API_KEYS",
            f"You already have {limit} active API keys; revoke one first.",
            details={"limit": limit},
        ) from None
    created = ApiKeyCreated(**_out(stored).model_dump(), key=key)
    return ok(created, status=201, headers={"Cache-Control": "no-store"})


@blueprint.get("")
@documented(ApiKeyListEnvelope, auth=True, errors={403: ("FORBIDDEN",)})
async def list_keys() -> Response:
    """Your API keys, revoked ones included, newest first (never the keys themselves)."""
    user = await _account_holder()
    keys = await ctx().services.storage.api_keys.of_user(user.id)
    limit = ctx().services.settings.api_keys_per_user
    return ok(ApiKeyList(keys=[_out(key) for key in keys], max_active=limit))


@blueprint.delete("/<key_id>")
@documented(ApiKeyEnvelope, auth=True, errors={403: ("FORBIDDEN",), 404: ("API_KEY_NOT_FOUND",)})
async def revoke_key(key_id: str) -> Response:
    """Revoke one of your keys: it stops working at once. Revoking twice changes nothing."""
    user = await _account_holder()
    revoked = await ctx().services.storage.api_keys.revoke(
        user.id, key_id, _activity("api_key_revoke", user.id, keyId=key_id)
    )
    if revoked is None:
        raise ApiError(404, "API_KEY_NOT_FOUND", f"You have no API key {key_id}.")
    return ok(_out(revoked), message="API key revoked.")
