"""The ``sora-actors`` command: serve, migrate, simulator, users, and the client commands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence

import trio

from .. import __version__
from ..logs import configure_from_settings
from ..settings import Settings, SettingsError, load
from ..storage import StorageError, open_storage
from ..upstream.fake.simulator import add_simulator_arguments
from .client import add_client_commands
from .users import add_user_commands

log = logging.getLogger("sora_actors")

# How long, at exit, a worker thread may take to finish before the process leaves without it.
LINGER_SECONDS = 2.0


def _configure_logging(settings: Settings | None) -> None:
    # JSON lines in production, readable ones in development; secrets redacted (logs.py).
    configure_from_settings(settings, level=logging.INFO, stream=sys.stderr)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from ..server import run_server

    code = 0
    try:
        trio.run(lambda: run_server(settings, host=args.host, port=args.port))
    except (StorageError, KeyboardInterrupt):
        code = 1
        raise
    except BaseException:
        # The runtime died (a bug, a damaged database): stop with a non-zero status so that
        # a supervisor (systemd's Restart=on-failure) starts a fresh process.
        log.critical("fatal error: sora-actors stops", exc_info=True)
        code = 1
    finally:
        _exit_now_if_threads_linger(code)
    return code


def _exit_now_if_threads_linger(code: int) -> None:
    """A worker thread nobody stopped (a driver's) would hold the interpreter at exit
    forever, its port already closed: exit at once instead of waiting for it."""
    deadline = time.monotonic() + LINGER_SECONDS
    lingering = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))  # one finishing its last step
        if thread.is_alive():
            lingering.append(thread.name)
    if not lingering:
        return
    log.error("threads still running at exit (%s): not waiting for them", ", ".join(lingering))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def migrate() -> list[int]:
        async with open_storage(settings.resolved_database_url, migrate=False) as storage:
            return await storage.database.migrate()

    applied = trio.run(migrate)
    if applied:
        print(f"applied migrations: {', '.join(str(v) for v in applied)}")
    else:
        print("schema already up to date")
    return 0


def _simulator(args: argparse.Namespace, settings: Settings) -> int:
    from ..upstream.fake.simulator.__main__ import run_from_args

    run_from_args(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sora-actors", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sora-actors {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP + WebSocket service")
    serve.add_argument("--host", default=None, help="bind address (default: SORA_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default: SORA_PORT)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(handler=_migrate)

    simulator = commands.add_parser(
        "simulator", help="run the OpenAI-Videos-compatible upstream simulator"
    )
    add_simulator_arguments(simulator)
    simulator.set_defaults(handler=_simulator)

    add_client_commands(commands)
    add_user_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load()
    except SettingsError as error:
        print(f"sora-actors: {error}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    try:
        code: int = args.handler(args, settings)
    except StorageError as error:
        print(f"sora-actors: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
