"""``sora-actors users``: accounts, straight on the configured database.

For operators (the first admin above all), so no server or token is needed, and it works
while servers run (SQLite: a second connection, WAL and a busy timeout; PostgreSQL: its
changes notify every running server, see `sora_actors/control.py`). SQLite servers notice
the changes within a second (they poll for outside commits).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ..admins import hash_password
from ..clock import iso
from ..http.models import RegisterRequest
from ..settings import Settings
from ..storage import Activity, Conflict, Storage, UserChanges, open_storage
from ..storage.accounts import LAST_ADMIN

T = TypeVar("T")
CLI_ACTIVITY = {"by": "command line"}


def _on_storage(settings: Settings, work: Callable[[Storage], Awaitable[T]]) -> T:
    async def main() -> T:
        url = settings.resolved_database_url
        async with open_storage(url, exclusive=False) as storage:
            return await work(storage)

    return trio.run(main)


def _fail(message: str) -> int:
    print(f"sora-actors users: {message}", file=sys.stderr)
    return 1


def _create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        valid = RegisterRequest(username=args.username, email=args.email, password=args.password)
    except ValueError as error:
        return _fail(str(error).splitlines()[0] + ": " + str(error).splitlines()[-1].strip())
    role = "ADMIN" if args.admin else "USER"

    async def work(storage: Storage) -> str:
        password_hash = await hash_password(valid.password, settings.bcrypt_rounds)
        activity = Activity("admin_user_create", details={**CLI_ACTIVITY, "role": role})
        user = await storage.accounts.create_user(
            valid.username, valid.email, password_hash, activity, role=role
        )
        return user.id

    try:
        user_id = _on_storage(settings, work)
    except Conflict as clash:
        return _fail(f"{clash.field}: {clash}")
    print(f"created {role} {valid.username} ({user_id})")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> list[str]:
        lines, page = [], 1
        while True:
            items, total = await storage.accounts.list_users(
                role=args.role, page=page, page_size=100
            )
            for item in items:
                user = item.user
                state = "banned" if user.banned else "active" if user.is_active else "inactive"
                lines.append(
                    f"{user.id}  {user.username:<32} {user.role:<5} {state:<8} "
                    f"{user.email or '-':<30} {iso(user.created_at)}  tasks={item.task_count}"
                )
            if page * 100 >= total:
                return lines
            page += 1

    for line in _on_storage(settings, work):
        print(line)
    return 0


def _change(settings: Settings, username: str, changes: UserChanges, action: str) -> int:
    async def work(storage: Storage) -> bool:
        user = await storage.accounts.by_username(username)
        if user is None:
            return False
        activity = Activity(action, details={**CLI_ACTIVITY, "targetUserId": user.id})
        return await storage.accounts.update_user(user.id, changes, activity) is not None

    try:
        found = _on_storage(settings, work)
    except Conflict as clash:
        if clash.field == LAST_ADMIN:
            return _fail("refused: that is the last active administrator")
        return _fail(str(clash))
    if not found:
        return _fail(f"no user {username!r}")
    print(f"updated {username}")
    return 0


def _set_role(args: argparse.Namespace, settings: Settings) -> int:
    return _change(settings, args.username, UserChanges(role=args.role), "admin_user_update")


def _deactivate(args: argparse.Namespace, settings: Settings) -> int:
    return _change(settings, args.username, UserChanges(is_active=False), "admin_user_delete")


def add_user_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``users create|list|set-role|deactivate``."""
    users = subparsers.add_parser("users", help="manage accounts on the configured database")
    commands = users.add_subparsers(dest="users_command", required=True)

    create = commands.add_parser("create", help="create an account (--admin: an ADMIN)")
    create.add_argument("--username", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--email", default=None)
    create.add_argument("--admin", action="store_true", help="role ADMIN (default USER)")
    create.set_defaults(handler=_create)

    listing = commands.add_parser("list", help="list accounts, newest first")
    listing.add_argument("--role", type=str.upper, choices=("USER", "ADMIN"))
    listing.set_defaults(handler=_list)

    set_role = commands.add_parser("set-role", help="make an account USER or ADMIN")
    set_role.add_argument("username")
    set_role.add_argument("role", type=str.upper, choices=("USER", "ADMIN"))
    set_role.set_defaults(handler=_set_role)

    deactivate = commands.add_parser(
        "deactivate", help="deactivate an account and end its sessions (tasks stay)"
    )
    deactivate.add_argument("username")
    deactivate.set_defaults(handler=_deactivate)
