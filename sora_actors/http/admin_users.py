"""``/api/admin/users``: what the admin dashboard calls to manage accounts.

Every route is gated by `require_admin` (401 without a good token, 403 FORBIDDEN for a
non-admin) and every change is logged with the acting admin's id. Changes that affect
access (role, active, banned, password) go through the access cache's writer, so they
take effect at once here and, through the control channel, on every instance; open
WebSocket connections that lose access are closed.

Deleting a user deactivates the account and revokes its sessions: its tasks and files stay
(admins still see them), and nothing refers to a missing user.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.alias_generators import to_camel
from quart import Blueprint, Response, request
from quart_schema import validate_request

from ..clock import iso
from ..storage import Conflict, User, UserChanges
from ..storage.accounts import LAST_ADMIN
from .accounts import _activity
from .apidoc import documented
from .context import ctx, require_admin
from .envelope import ApiError, ok
from .models import AdminCreateUserRequest, AdminUpdateUserRequest, BanRequest
from .schemas import (
    AdminUserDetailEnvelope,
    AdminUserEnvelope,
    AdminUserListQuery,
    AdminUserPageEnvelope,
)
from .tasks import MAX_PAGE_SIZE, _int_arg, _refuse

blueprint = Blueprint("admin_users", __name__, url_prefix="/api/admin/users")

ADMIN_ERRORS: dict[int, tuple[str, ...]] = {403: ("FORBIDDEN",)}
CHANGE_ERRORS: dict[int, tuple[str, ...]] = {
    **ADMIN_ERRORS,
    404: ("USER_NOT_FOUND",),
    409: ("EMAIL_TAKEN", "LAST_ADMIN"),
}


def admin_user(user: User, task_count: int) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "isActive": user.is_active,
        "banned": user.banned,
        "createdAt": iso(user.created_at),
        "lastLogin": iso(user.last_login),
        "taskCount": task_count,
    }


def _activity_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "userId": row["user_id"],
        "action": row["action"],
        "details": json.loads(row["details"]) if row["details"] else None,
        "ip": row["ip"],
        "userAgent": row["user_agent"],
        "createdAt": iso(row["created_at"]),
    }


def _not_found(user_id: str) -> ApiError:
    return ApiError(404, "USER_NOT_FOUND", f"No user {user_id[:200]}.")


def _conflict(clash: Conflict) -> ApiError:
    if clash.field == LAST_ADMIN:
        return ApiError(
            409,
            "LAST_ADMIN",
            "This is the last active administrator: make another one first.",
        )
    return ApiError(409, "EMAIL_TAKEN", str(clash), details={"field": clash.field})


async def _change(user_id: str, changes: UserChanges, action: str, **details: Any) -> User:
    """Apply an access-affecting change through the one writer, logged as the admin."""
    admin, _ = await require_admin()
    entry = _activity(action, admin.user_id, targetUserId=user_id, **details)
    try:
        user = await ctx().services.runtime.access.update_user(user_id, changes, entry)
    except Conflict as clash:
        raise _conflict(clash) from None
    if user is None:
        raise _not_found(user_id)
    return user


async def _answer(user: User) -> Response:
    detail = await ctx().services.storage.accounts.detail(user.id)
    count = sum(detail.tasks_by_status.values()) if detail is not None else 0
    return ok(admin_user(user, count))


@blueprint.get("")
@documented(
    AdminUserPageEnvelope,
    auth=True,
    query=AdminUserListQuery,
    errors={**ADMIN_ERRORS, 400: ("VALIDATION_ERROR",)},
)
async def list_users() -> Response:
    """Accounts, newest first, a page at a time; filters ``q``, ``role``, ``isActive``."""
    await require_admin()
    problems: list[dict[str, str]] = []
    page = _int_arg("page", 1, 1, 1_000_000, problems)
    page_size = _int_arg("pageSize", 20, 1, MAX_PAGE_SIZE, problems)
    role = request.args.get("role") or None
    if role is not None:
        role = role.upper()
        if role not in ("USER", "ADMIN"):
            problems.append({"field": "role", "message": "must be USER or ADMIN"})
    raw_active = (request.args.get("isActive") or "").lower()
    if raw_active not in ("", "true", "false"):
        problems.append({"field": "isActive", "message": "must be true or false"})
    q = (request.args.get("q") or "").strip()[:254] or None
    _refuse(problems)
    items, total = await ctx().services.storage.accounts.list_users(
        q=q,
        role=role,
        is_active=None if raw_active == "" else raw_active == "true",
        page=page,
        page_size=page_size,
    )
    return ok(
        {
            "items": [admin_user(item.user, item.task_count) for item in items],
            "total": total,
            "page": page,
            "pageSize": page_size,
        }
    )


@blueprint.get("/<user_id>")
@documented(AdminUserDetailEnvelope, auth=True, errors={**ADMIN_ERRORS, 404: ("USER_NOT_FOUND",)})
async def get_user(user_id: str) -> Response:
    """One account with its licence, its last 20 activity entries and task counts."""
    await require_admin()
    detail = await ctx().services.storage.accounts.detail(user_id)
    if detail is None:
        raise _not_found(user_id)
    body = admin_user(detail.user, sum(detail.tasks_by_status.values()))
    licence = detail.licence
    body["license"] = {to_camel(k): v for k, v in licence.items()} if licence else None
    body["tasksByStatus"] = detail.tasks_by_status
    body["recentActivity"] = [_activity_out(row) for row in detail.activity]
    return ok(body)


@blueprint.post("")
@documented(
    AdminUserEnvelope,
    status=201,
    auth=True,
    json_body=AdminCreateUserRequest,
    errors={**ADMIN_ERRORS, 409: ("USERNAME_TAKEN", "EMAIL_TAKEN"), 503: ("SERVER_BUSY",)},
)
@validate_request(AdminCreateUserRequest)
async def create_user(data: AdminCreateUserRequest) -> Response:
    """Create an account (role USER unless given)."""
    admin, _ = await require_admin()
    context = ctx()
    password_hash = await context.passwords.hash(data.password)
    entry = _activity("admin_user_create", admin.user_id, username=data.username, role=data.role)
    try:
        user = await context.services.storage.accounts.create_user(
            data.username, data.email, password_hash, entry, role=data.role
        )
    except Conflict as clash:
        code = "EMAIL_TAKEN" if clash.field == "email" else "USERNAME_TAKEN"
        raise ApiError(409, code, str(clash), details={"field": clash.field}) from None
    return ok(admin_user(user, 0), status=201)


@blueprint.put("/<user_id>")
@documented(
    AdminUserEnvelope,
    auth=True,
    json_body=AdminUpdateUserRequest,
    errors={**CHANGE_ERRORS, 503: ("SERVER_BUSY",)},
)
@validate_request(AdminUpdateUserRequest)
async def update_user(user_id: str, data: AdminUpdateUserRequest) -> Response:
    """Change email, role, isActive, or reset the password (which ends the user's sessions;
    an admin resetting their own keeps the one they are using)."""
    admin, _ = await require_admin()
    given = data.model_fields_set
    password_hash = None
    if data.password is not None:
        password_hash = await ctx().passwords.hash(data.password)
    changes = UserChanges(
        email=data.email,
        clear_email="email" in given and data.email is None,
        role=data.role,
        is_active=data.is_active,
        password_hash=password_hash,
        keep_session=admin.session_id if admin.user_id == user_id else None,
    )
    fields = sorted(to_camel(name) for name in given)
    return await _answer(await _change(user_id, changes, "admin_user_update", fields=fields))


@blueprint.delete("/<user_id>")
@documented(AdminUserEnvelope, auth=True, errors=CHANGE_ERRORS)
async def delete_user(user_id: str) -> Response:
    """Deactivate the account and end its sessions; its tasks and files stay."""
    changes = UserChanges(is_active=False)
    return await _answer(await _change(user_id, changes, "admin_user_delete"))


@blueprint.post("/<user_id>/ban")
@documented(AdminUserEnvelope, auth=True, json_body=BanRequest, errors=CHANGE_ERRORS)
@validate_request(BanRequest)
async def ban_user(user_id: str, data: BanRequest) -> Response:
    """Ban (``{banned: true}``: sessions end, login refused) or lift a ban."""
    changes = UserChanges(banned=data.banned)
    return await _answer(await _change(user_id, changes, "admin_user_ban", banned=data.banned))
