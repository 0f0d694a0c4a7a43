"""Benchmark (run by hand): the cost of the per-request account/session check.

Every authenticated request asks whether its token's account and session may still be
used. Measured here in one process, without HTTP, as CPU time per check (a busy machine
disturbs CPU time far less than wall time):

- ``read by id``: what the check was before sessions (one users read by primary key);
- ``read (no cache)``: the check with ``SORA_SESSION_CACHE_SECONDS=0`` (users joined
  with sessions, one read);
- ``cache hit``: `Access.check` answered from memory (entries live 1 s: at any request
  rate above a few per second per session, almost every check is a hit).

    python bench/access.py [--checks 5000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from sora_actors.access import Access
from sora_actors.clock import wall_ms
from sora_actors.control import ControlEvents
from sora_actors.storage import Activity, NewSession, open_storage


async def per_check_us(checks: int, check: Callable[[], Awaitable[object]]) -> float:
    for _ in range(min(200, checks)):  # warm up
        await check()
    started = time.process_time()
    for _ in range(checks):
        await check()
    return (time.process_time() - started) * 1e6 / checks


async def main(args: argparse.Namespace) -> None:
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    async with open_storage(url) as storage:
        user = await storage.accounts.create_user(
            f"bench{wall_ms()}", None, "h", Activity("register")
        )
        session = NewSession(f"sid-{wall_ms()}", user.id, wall_ms() + 3_600_000)
        await storage.accounts.record_login(session, Activity("login", user.id))
        control = ControlEvents(storage)
        cached = Access(storage, control, ttl_s=3600)
        uncached = Access(storage, control, ttl_s=0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(control.run)
            with trio.fail_after(10):
                while not control.live:
                    await trio.sleep(0.01)
            figures = {
                "read by id (before)": await per_check_us(
                    args.checks, lambda: storage.accounts.by_id(user.id)
                ),
                "read (no cache)": await per_check_us(
                    args.checks, lambda: uncached.check(user.id, session.id)
                ),
                "cache hit": await per_check_us(
                    args.checks, lambda: cached.check(user.id, session.id)
                ),
            }
            nursery.cancel_scope.cancel()
    before = figures["read by id (before)"]
    print(f"{'check':<24}{'CPU us/check':>14}{'vs before':>11}   ({storage.dialect})")
    for name, value in figures.items():
        print(f"{name:<24}{value:>14.1f}{value / before:>11.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    trio.run(main, parser.parse_args())
