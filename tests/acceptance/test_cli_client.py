"""``sora-actors submit`` and ``sora-actors tasks`` as a user runs them: a child process
against a real server (SQLite, the in-process simulator sped up), judged by exit code,
stdout and stderr only."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from sora_actors.cli.client import _apply, _ws_url
from sora_actors.settings import Settings
from tests.conftest import make_settings
from tests.harness import LiveServer, live_server

REPO = Path(__file__).resolve().parents[2]
TIME_SCALE = 60.0
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


async def sora(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> Ran:
    """Run the CLI in a child process with a clean SORA_* environment."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SORA_")}
    clean.update(env or {})
    with trio.fail_after(timeout):
        done = await trio.run_process(
            [sys.executable, "-m", "sora_actors.cli", *argv],
            cwd=REPO,
            env=clean,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return Ran(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
async def server(tmp_path: Path, sqlite_url: str) -> AsyncIterator[LiveServer]:
    settings: Settings = make_settings(
        tmp_path, sqlite_url, simulator_time_scale=TIME_SCALE, polling_speedup=TIME_SCALE
    )
    async with live_server(settings) as running:
        await running.register("carol")
        yield running


def creds(server: LiveServer) -> dict[str, str]:
    return {"SORA_URL": server.base_url, "SORA_USERNAME": "carol", "SORA_PASSWORD": "password-1"}


async def test_submit_watch_prints_the_playable_url_and_exits_0(server: LiveServer) -> None:
    ran = await sora(
        "submit", "A lighthouse in fog", "--duration", "8", "--watch", env=creds(server)
    )
    assert ran.code == 0, ran
    url = ran.out.strip()
    assert url.startswith(server.base_url + "/"), ran.out
    assert len(ran.out.splitlines()) == 1
    # stderr: the task id, then one progress line per change ending at COMPLETED 100%.
    first, *progress = ran.err_lines
    assert first.startswith("video_") and first.endswith(": QUEUED"), ran.err
    assert progress[-1] == "COMPLETED 100%", ran.err
    values = [int(line.rsplit(" ", 1)[1].rstrip("%")) for line in progress]
    assert values == sorted(values), ran.err
    # The URL plays without an Authorization header.
    video = await server.client.get(url)
    assert video.status_code == 200
    assert video.headers["content-type"].startswith("video/")
    assert len(video.content) > 1000


async def test_watch_of_a_failing_video_exits_1_with_its_reason(server: LiveServer) -> None:
    ran = await sora("submit", "Waves #sim-fail", "--watch", env=creds(server))
    assert ran.code == 1, ran
    assert ran.out == ""
    last = ran.err_lines[-1]
    assert last.startswith("sora-actors: video_") and " failed: " in last, ran.err
    assert "FAILED" in ran.err_lines[-2]


async def test_submit_without_watch_prints_the_id_and_tasks_lists_it(
    server: LiveServer, tmp_path: Path
) -> None:
    image = tmp_path / "ref.png"
    image.write_bytes(PNG)
    made = await sora("submit", "A red kite", "--image", str(image), env=creds(server))
    assert made.code == 0, made
    video_id = made.out.strip()
    assert video_id.startswith("video_") and made.err == ""
    token = await server.login("carol")
    other = await sora(
        "submit",
        "A blue kite",
        "--token",
        token,
        "--size",
        "1280x720",
        env={"SORA_URL": server.base_url},
    )
    assert other.code == 0, other

    listed = await sora("tasks", env=creds(server))
    assert listed.code == 0, listed
    header, *rows, footer = listed.out.splitlines()
    assert header.split() == ["VIDEO", "ID", "STATUS", "PROGRESS", "CREATED", "PROMPT"]
    assert [row.split()[0] for row in rows] == [other.out.strip(), video_id]  # newest first
    assert rows[1].endswith("A red kite")
    assert footer == "page 1 of 1, 2 tasks"

    paged = await sora(
        "tasks",
        "--page",
        "2",
        "--page-size",
        "1",
        "--url",
        server.base_url,
        "--username",
        "carol",
        "--password",
        "password-1",
    )
    assert paged.code == 0, paged
    assert paged.out.splitlines()[1].split()[0] == video_id
    assert paged.out.splitlines()[-1] == "page 2 of 2, 2 tasks"

    none = await sora("tasks", "--status", "cancelled", env=creds(server))
    assert none.code == 0 and none.out == "no tasks with status CANCELLED on page 1\n", none


async def test_bad_password_is_one_line_and_exit_2(server: LiveServer) -> None:
    env = {**creds(server), "SORA_PASSWORD": "wrong-password"}
    for argv in (("tasks",), ("submit", "x", "--watch")):
        ran = await sora(*argv, env=env)
        assert ran.code == 2, ran
        assert ran.out == ""
        assert ran.err == "sora-actors: login failed: Invalid username or password.\n"


async def test_server_refusals_carry_the_envelope_message(server: LiveServer) -> None:
    ran = await sora("submit", "x", "--size", "7x7", env=creds(server))
    assert ran.code == 2
    assert ran.err_lines == [
        "sora-actors: submit failed: size: must be one of 720x1280, 1280x720, 1024x1792, 1792x1024"
    ]
    expired = await sora("tasks", "--token", "not-a-token", env={"SORA_URL": server.base_url})
    assert expired.code == 2 and len(expired.err_lines) == 1, expired
    assert expired.err.startswith("sora-actors: listing tasks failed: ")


async def test_unreachable_server_is_one_line_and_exit_2() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    for argv in (("tasks",), ("submit", "x", "--watch")):
        ran = await sora(*argv, "--url", url, "--token", "t")
        assert ran.code == 2, ran
        assert ran.out == ""
        assert len(ran.err_lines) == 1, ran.err
        assert ran.err.startswith(f"sora-actors: cannot reach the server at {url}: "), ran.err


async def test_usage_errors_exit_2() -> None:
    no_creds = await sora("tasks", "--url", "http://127.0.0.1:9")
    assert no_creds.code == 2 and len(no_creds.err_lines) == 1
    assert no_creds.err.startswith("sora-actors: no credentials: pass --token")
    bad_url = await sora("tasks", "--url", "ftp://x", "--token", "t")
    assert bad_url.code == 2
    assert bad_url.err_lines == [
        "sora-actors: the server URL must look like http://host:port, got 'ftp://x'"
    ]
    missing = await sora(
        "submit", "x", "--image", "/nonexistent.png", "--url", "http://127.0.0.1:9", "--token", "t"
    )
    assert missing.code == 2
    assert missing.err_lines == [
        "sora-actors: cannot read the image '/nonexistent.png': No such file or directory"
    ]
    argparse_error = await sora("tasks", "--page", "0")
    assert argparse_error.code == 2 and "must be at least 1" in argparse_error.err


def test_the_live_url_follows_the_server_url() -> None:
    assert _ws_url("http://127.0.0.1:3001") == "ws://127.0.0.1:3001/ws"
    assert _ws_url("https://videos.example/sora") == "wss://videos.example/sora/ws"


def test_events_are_folded_in_seq_order() -> None:
    task: dict[str, object] = {"videoId": "v", "status": "QUEUED", "progress": 0}
    _apply(task, "taskProgress", {"videoId": "v", "status": "PROCESSING", "progress": 40, "seq": 5})
    _apply(task, "taskProgress", {"videoId": "v", "status": "PROCESSING", "progress": 20, "seq": 4})
    assert (task["status"], task["progress"], task["seq"]) == ("PROCESSING", 40, 5)
    _apply(
        task,
        "taskCompleted",
        {"videoId": "v", "status": "completed", "seq": 7, "result": {"videoUrl": "/c/v"}},
    )
    assert (task["status"], task["progress"], task["videoUrl"]) == ("COMPLETED", 100, "/c/v")
    _apply(task, "taskStatus", {"videoId": "v", "status": "PROCESSING", "progress": 60, "seq": 6})
    assert task["status"] == "COMPLETED"
