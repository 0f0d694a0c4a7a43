"""A regular install works: build the wheel, install it into a fresh virtualenv outside the
checkout, run ``sora-actors serve`` from an unrelated folder, use it, stop it with SIGTERM.

Nothing is downloaded: the wheel is built with the setuptools of the test environment
(``--no-build-isolation``), and the fresh virtualenv finds the project's dependencies through
a ``.pth`` line naming this environment's site-packages. That line adds the folder only: the
``.pth`` files in it (the editable install's import hook among them) are not run, so
``sora_actors`` can only come from the wheel, which the test checks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from sora_actors.upstream.fake.media import media_sha256
from tests import processes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# What a source distribution would hold; the build sees nothing else of the checkout.
SOURCES = ("pyproject.toml", "README.md", "config", "sora_actors")


def _run(*command: str | Path, **options: Any) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **options,
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _clean_environment() -> dict[str, str]:
    """This environment without settings or anything that points Python at the checkout."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SORA_", "PYTHON", "VIRTUAL_ENV"))
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the package's sources (the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=junk)
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--wheel-dir",
        out,
        source,
    )
    (built,) = out.glob("sora_actors-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed; its ``bin`` folder."""
    venv = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel
    )
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def test_the_wheel_holds_every_file_the_package_reads(wheel: Path) -> None:
    in_source = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "sora_actors").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
        defaults = archive.read("sora_actors/defaults.toml")
    assert in_source - in_wheel == set()
    assert "sora_actors/storage/migrations/0001_initial.sql" in in_wheel
    assert "sora_actors/http/static/app.js" in in_wheel
    # The link was followed: the wheel holds the documented defaults themselves.
    assert defaults == (ROOT / "config" / "default.toml").read_bytes()


@pytest.fixture
def service(installed: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``sora-actors serve`` of the fresh install, started in an empty folder with no settings
    but the port and the demo speed: SQLite under ./data and the in-process simulator."""
    env = _clean_environment()
    env.update(SORA_SIMULATOR_TIME_SCALE="240", SORA_POLLING_SPEEDUP="80", SORA_BCRYPT_ROUNDS="4")
    port = processes.free_port()
    (tmp_path / "run").mkdir()
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [installed / "sora-actors", "serve", "--port", str(port)],
            cwd=tmp_path / "run",
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        print((tmp_path / "serve.log").read_text())  # shown when the test fails


async def test_an_installed_wheel_serves_from_any_folder(
    installed: Path, service: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    imported = _run(
        installed / "python",
        "-c",
        "import sora_actors; print(sora_actors.__file__)",
        cwd=tmp_path,
        env=_clean_environment(),
    )
    assert imported.startswith(str(installed.parent)), imported

    base, process = service
    await processes.wait_healthy(base, process=process)
    async with httpx2.AsyncClient(base_url=base, timeout=10) as client:
        console = await client.get("/")
        assert console.status_code == 200 and "/static/app.js" in console.text
        assert (await client.get("/static/app.css")).status_code == 200
        assert (await client.get("/docs")).status_code == 200
        # A task end to end: migrations applied, the simulator's sample video copied.
        account = {"username": "wheel", "password": "password-1"}
        assert (await client.post("/api/auth/register", json=account)).status_code == 201
        token = (await client.post("/api/auth/login", json=account)).json()["data"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = await client.post("/api/video/tasks", json={"prompt": "a wheel"}, headers=headers)
        assert created.status_code == 201, created.text
        video_id = created.json()["data"]["videoId"]
        with trio.fail_after(30):
            while True:
                task = (await client.get(f"/api/video/tasks/{video_id}", headers=headers)).json()
                if task["data"]["contentStatus"] == "STORED":
                    break
                assert task["data"]["status"] not in ("FAILED", "CANCELLED"), task
                await trio.sleep(0.05)
        link = await client.get(f"/api/video/tasks/{video_id}/content", headers=headers)
        video = await client.get(link.json()["data"]["url"])
        assert video.status_code == 200
        assert hashlib.sha256(video.content).hexdigest() == media_sha256("video")

    process.send_signal(signal.SIGTERM)
    with trio.fail_after(30):
        while process.poll() is None:
            await trio.sleep(0.05)
    log = (tmp_path / "serve.log").read_text()
    assert process.returncode == 0, log
    assert (tmp_path / "run" / "data" / "sora.db").is_file()  # ./data where it was started
    assert "Traceback" not in log, log
