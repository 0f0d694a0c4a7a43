"""Client commands: ``sora-actors submit`` and ``sora-actors tasks`` against a running server.

They speak only the public contract (REST envelopes and ``/ws``), so they double as a smoke
test of a deployment. Output is split for scripts: stdout carries the result (a video id, a
URL, a table); stderr carries progress and, on failure, exactly one line saying why. Exit
codes: 0 done (or COMPLETED), 1 the video FAILED or was CANCELLED, 2 anything that stopped
us from finding out (usage, connection, credentials, a refused request).
"""

from __future__ import annotations

import argparse
import json
import logging
import mimetypes
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import httpx2
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from ..lifecycle import TERMINAL_STATUSES, Status
from ..settings import Settings

DEFAULT_URL = "http://127.0.0.1:3001"
EXIT_COMPLETED = 0
EXIT_UNSUCCESSFUL = 1
EXIT_ERROR = 2
STATUSES = tuple(status.value for status in Status)
HTTP_TIMEOUT_SECONDS = 30.0
WS_CONNECT_TIMEOUT_SECONDS = 10.0
WS_RECONNECTS = 5
BAR_WIDTH = 30


class ClientError(Exception):
    """Something stopped the command; the message is the one line the user sees."""


@dataclass(frozen=True)
class Credentials:
    """A token, or a username and password to trade for one."""

    token: str | None = None
    username: str | None = None
    password: str | None = None


# ---------------------------------------------------------------------------- the commands


def add_client_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``submit`` and ``tasks``; their handlers are ``handler(args, settings) -> int``."""
    common = argparse.ArgumentParser(add_help=False)
    server = common.add_argument_group("server and credentials")
    server.add_argument("--url", help=f"server base URL (default: SORA_URL or {DEFAULT_URL})")
    server.add_argument("--username", help="log in as this user (default: SORA_USERNAME)")
    server.add_argument("--password", help="password for --username (default: SORA_PASSWORD)")
    server.add_argument("--token", help="a login token instead of a password (default: SORA_TOKEN)")

    submit = subparsers.add_parser(
        "submit", parents=[common], help="submit a prompt (and reference image) for a video"
    )
    submit.add_argument("prompt", help="what the video should show")
    submit.add_argument(
        "--image", type=Path, metavar="FILE", help="reference image (PNG/JPEG/WebP)"
    )
    submit.add_argument("--model", help="e.g. sora-2, sora-2-pro (default: the server's)")
    submit.add_argument("--size", help="WIDTHxHEIGHT, e.g. 1280x720 (default: the server's)")
    submit.add_argument("--duration", type=_positive_int, help="seconds (default: the server's)")
    submit.add_argument(
        "--watch",
        action="store_true",
        help="follow progress live and print the video URL; exit 0 COMPLETED, 1 FAILED/CANCELLED",
    )
    submit.set_defaults(handler=submit_command)

    tasks = subparsers.add_parser("tasks", parents=[common], help="list your video tasks")
    tasks.add_argument("--status", type=str.upper, choices=STATUSES, help="only this status")
    tasks.add_argument("--page", type=_positive_int, default=1, help="page number (from 1)")
    tasks.add_argument("--page-size", type=_positive_int, default=20, help="tasks per page")
    tasks.set_defaults(handler=tasks_command)


def submit_command(args: argparse.Namespace, settings: Settings) -> int:
    """``sora-actors submit``: the server and credentials come from flags or SORA_* only."""
    return _run(
        lambda: partial(
            submit,
            _base_url(args.url),
            _credentials(args),
            prompt=args.prompt,
            image=args.image,
            model=args.model,
            size=args.size,
            duration=args.duration,
            watch_progress=args.watch,
        )
    )


def tasks_command(args: argparse.Namespace, settings: Settings) -> int:
    """``sora-actors tasks``: one page of the caller's tasks."""
    return _run(
        lambda: partial(
            list_tasks,
            _base_url(args.url),
            _credentials(args),
            status=args.status,
            page=args.page,
            page_size=args.page_size,
        )
    )


def _run(prepare: Callable[[], Callable[[], Awaitable[int]]]) -> int:
    """Prepare and run one command under Trio; a ClientError is one stderr line, exit 2."""
    # The CLI logs at INFO for `serve`; a client's stderr is for progress and one error line.
    logging.getLogger().setLevel(logging.WARNING)
    try:
        return trio.run(prepare())
    except ClientError as error:
        print(f"sora-actors: {_one_line(str(error))}", file=sys.stderr)
        return EXIT_ERROR


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _base_url(flag: str | None, environ: Mapping[str, str] = os.environ) -> str:
    url = (flag or environ.get("SORA_URL") or DEFAULT_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"the server URL must look like http://host:port, got {url!r}")
    return url


def _credentials(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Credentials:
    """Flags win over the environment; a token wins over a password at the same level."""
    if args.token:
        return Credentials(token=args.token)
    if args.username:
        return Credentials(username=args.username, password=args.password or None)
    if environ.get("SORA_TOKEN"):
        return Credentials(token=environ["SORA_TOKEN"])
    if environ.get("SORA_USERNAME"):
        return Credentials(
            username=environ["SORA_USERNAME"],
            password=args.password or environ.get("SORA_PASSWORD") or None,
        )
    raise ClientError(
        "no credentials: pass --token, or --username and --password "
        "(or set SORA_TOKEN, or SORA_USERNAME and SORA_PASSWORD)"
    )


# ---------------------------------------------------------------------------- HTTP


class Api:
    """The REST side: envelopes in, data or a ClientError carrying the server's message out."""

    def __init__(self, client: httpx2.AsyncClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url
        self.token = ""

    async def call(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.client.request(method, path, headers=headers, **kwargs)
        except httpx2.TimeoutException:
            raise ClientError(f"{what}: {self.base_url} did not answer in time") from None
        except httpx2.TransportError as error:
            reason = str(error) or type(error).__name__
            raise ClientError(f"cannot reach the server at {self.base_url}: {reason}") from None
        return _envelope_data(what, response)

    async def log_in(self, credentials: Credentials) -> None:
        if credentials.token:
            self.token = credentials.token
            return
        if not credentials.password:
            raise ClientError(
                f"no password for {credentials.username!r}: pass --password or set SORA_PASSWORD"
            )
        data = await self.call(
            "login failed",
            "POST",
            "/api/auth/login",
            json={"username": credentials.username, "password": credentials.password},
        )
        self.token = str(data["token"])


def _envelope_data(what: str, response: httpx2.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict) and body.get("success") is True:
        return body.get("data")
    message = _envelope_message(response.content) or (
        f"the server answered HTTP {response.status_code} without an explanation"
    )
    raise ClientError(f"{what}: {message}")


def _envelope_message(raw: bytes | None) -> str | None:
    """The ``message`` of an error envelope, if ``raw`` is one."""
    try:
        body = json.loads(raw or b"")
    except ValueError:
        return None
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else None


def _open_api(base_url: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_SECONDS)


# ---------------------------------------------------------------------------- submit


async def submit(
    base_url: str,
    credentials: Credentials,
    *,
    prompt: str,
    image: Path | None = None,
    model: str | None = None,
    size: str | None = None,
    duration: int | None = None,
    watch_progress: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Create a task; print its id, or with ``watch_progress`` follow it to the end."""
    out = out or sys.stdout
    err = err or sys.stderr
    fields: dict[str, Any] = {"prompt": prompt}
    for key, value in (("model", model), ("size", size), ("duration", duration)):
        if value is not None:
            fields[key] = value
    request: dict[str, Any]
    if image is None:
        request = {"json": fields}
    else:
        request = {
            "data": {key: str(value) for key, value in fields.items()},
            "files": {"input_reference": _image_part(image)},
        }
    async with _open_api(base_url) as client:
        api = Api(client, base_url)
        await api.log_in(credentials)
        task = await api.call("submit failed", "POST", "/api/video/tasks", **request)
        video_id = str(task["videoId"])
        if not watch_progress:
            print(video_id, file=out)
            return EXIT_COMPLETED
        print(f"{video_id}: {task.get('status', Status.QUEUED.value)}", file=err)
        final = await watch(base_url, api.token, video_id, Progress(err))
        return await _report(api, final, out, err)


def _image_part(path: Path) -> tuple[str, bytes, str]:
    try:
        content = path.read_bytes()
    except OSError as error:
        raise ClientError(f"cannot read the image {str(path)!r}: {error.strerror}") from None
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return path.name, content, media_type


async def _report(api: Api, task: dict[str, Any], out: TextIO, err: TextIO) -> int:
    """The end of a watch: the URL on stdout, or why not on stderr."""
    video_id = task["videoId"]
    status = task["status"]
    if status == Status.COMPLETED:
        url = task.get("videoUrl")
        if not url:
            content = await api.call(
                "fetching the video URL failed", "GET", f"/api/video/tasks/{video_id}/content"
            )
            url = content["url"]
        print(_absolute(api.base_url, str(url)), file=out)
        return EXIT_COMPLETED
    if status == Status.FAILED:
        reason = task.get("errorMessage") or task.get("errorCode") or "no reason given"
        print(f"sora-actors: {video_id} failed: {_one_line(str(reason))}", file=err)
    else:
        print(f"sora-actors: {video_id} was cancelled", file=err)
    return EXIT_UNSUCCESSFUL


def _absolute(base_url: str, url: str) -> str:
    """Signed URLs may be relative to the server; make them usable outside it."""
    return url if urlsplit(url).scheme else base_url + "/" + url.lstrip("/")


# ---------------------------------------------------------------------------- watch


class Progress:
    """A progress bar redrawn in place on a terminal; one line per change otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last: tuple[str, int] | None = None

    def show(self, status: str, progress: int) -> None:
        if (status, progress) == self.last:
            return
        self.last = (status, progress)
        if self.tty:
            filled = BAR_WIDTH * progress // 100
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {progress:3d}% {status:<10}")
        else:
            self.stream.write(f"{status} {progress}%\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.last is not None:
            self.stream.write("\n")
            self.stream.flush()


def _ws_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


async def watch(base_url: str, token: str, video_id: str, progress: Progress) -> dict[str, Any]:
    """Follow one task over ``/ws`` until it is terminal; return its last known state.

    A dropped connection is retried with backoff; on each (re)subscription the server sends
    a ``taskStatus`` snapshot, so nothing that happened in between is missed.
    """
    url = _ws_url(base_url)
    task: dict[str, Any] = {"videoId": video_id, "status": Status.QUEUED.value, "progress": 0}
    failures = 0
    try:
        while True:
            try:
                async with open_websocket_url(
                    url, connect_timeout=WS_CONNECT_TIMEOUT_SECONDS, disconnect_timeout=2
                ) as ws:
                    await _follow(ws, token, task, progress)
                    return task
            except ConnectionRejected as refused:
                # An answer, not a network failure: retrying will not change it.
                reason = _envelope_message(refused.body) or "no explanation"
                raise ClientError(
                    f"the live connection {url} was refused (HTTP {refused.status_code}): {reason}"
                ) from None
            except (HandshakeError, ConnectionClosed, OSError) as error:
                failures += 1
                if failures > WS_RECONNECTS:
                    cause = error.__cause__ or error
                    reason = _one_line(str(cause)) or type(cause).__name__
                    raise ClientError(f"lost the live connection {url}: {reason}") from None
            await trio.sleep(min(8.0, 0.25 * 2**failures))
    finally:
        progress.done()


async def _follow(
    ws: WebSocketConnection, token: str, task: dict[str, Any], progress: Progress
) -> None:
    """Authenticate, subscribe, apply events to ``task``; return once it is terminal."""
    video_id = task["videoId"]
    await _send(ws, "auth", {"token": token})
    subscribed = False
    while True:
        message = json.loads(await ws.get_message())
        kind = message.get("type")
        payload = message.get("payload") or {}
        if kind == "authSuccess":
            await _send(ws, "subscribe_task", {"videoId": video_id})
        elif kind == "authFailed":
            raise ClientError(f"the live connection refused the token: {payload.get('error')}")
        elif kind == "error":
            text = payload.get("message") or payload.get("error") or "unknown error"
            if isinstance(text, dict):
                text = text.get("message", "unknown error")
            raise ClientError(f"the live connection reported: {text}")
        elif kind == "subscribeSuccess":
            subscribed = True
        elif subscribed and payload.get("videoId") == video_id:
            _apply(task, kind, payload)
            progress.show(task["status"], int(task.get("progress") or 0))
            if task["status"] in TERMINAL_STATUSES:
                return


def _apply(task: dict[str, Any], kind: str | None, payload: dict[str, Any]) -> None:
    """Fold one task event into the task; events carry ``seq``, so stale ones are skipped."""
    seq = payload.get("seq")
    if isinstance(seq, int) and isinstance(task.get("seq"), int) and seq < task["seq"]:
        return
    if kind in ("taskStatus", "taskProgress"):
        task.update({key: value for key, value in payload.items() if value is not None})
    elif kind == "taskCompleted":
        result = payload.get("result") or {}
        task.update(progress=100, videoUrl=result.get("videoUrl") or task.get("videoUrl"))
        task["status"] = Status.COMPLETED.value
    elif kind == "taskCancelled":
        task["status"] = Status.CANCELLED.value
    elif kind == "taskFailed":
        error = payload.get("error") or {}
        task.update(errorCode=error.get("code"), errorMessage=error.get("message"))
        task["status"] = Status.FAILED.value
    else:
        return
    if isinstance(seq, int):
        task["seq"] = seq
    task["status"] = str(task["status"]).upper()


async def _send(ws: WebSocketConnection, kind: str, payload: dict[str, Any]) -> None:
    message = {"type": kind, "id": kind, "timestamp": int(time.time() * 1000), "payload": payload}
    await ws.send_message(json.dumps(message))


# ---------------------------------------------------------------------------- tasks


async def list_tasks(
    base_url: str,
    credentials: Credentials,
    *,
    status: str | None = None,
    page: int = 1,
    page_size: int = 20,
    out: TextIO | None = None,
) -> int:
    """Print one page of the caller's tasks as a table, newest first."""
    out = out or sys.stdout
    query: dict[str, Any] = {"page": page, "pageSize": page_size}
    if status:
        query["status"] = status
    async with _open_api(base_url) as client:
        api = Api(client, base_url)
        await api.log_in(credentials)
        data = await api.call("listing tasks failed", "GET", "/api/video/tasks", params=query)
    tasks: list[dict[str, Any]] = data["tasks"]
    total = int(data["total"])
    pages = max(1, -(-total // page_size))
    if not tasks:
        print(f"no tasks{' with status ' + status if status else ''} on page {page}", file=out)
        return EXIT_COMPLETED
    rows = [("VIDEO ID", "STATUS", "PROGRESS", "CREATED", "PROMPT")]
    for task in tasks:
        created = str(task.get("createdAt") or "")[:19].replace("T", " ")
        rows.append(
            (
                str(task["videoId"]),
                str(task["status"]),
                f"{int(task.get('progress') or 0)}%",
                created,
                _clip(str(task.get("prompt") or ""), 48),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[4]]).rstrip(), file=out)
    print(f"page {page} of {pages}, {total} task{'s' if total != 1 else ''}", file=out)
    return EXIT_COMPLETED


def _clip(text: str, width: int) -> str:
    text = _one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())
