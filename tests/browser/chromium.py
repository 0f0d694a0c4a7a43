"""Headless Chromium (Debian's package) driven by Playwright, for the console's tests.

Playwright's own browser download is not used (machines have no internet): we launch the
system ``chromium``. Each browser session runs in a child process (``tests.browser.run``):
Playwright drives its own asyncio loop, which cannot coexist with the trio-asyncio loop
policy of the process that runs the server under test.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCENARIO_TIMEOUT_SECONDS = 120


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """The Chromium executable, or skip (fail under CI=true) when it or Playwright is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        missing.append("chromium (apt-get install chromium)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: browser tests must run)")
        pytest.skip(message)  # a laptop without a browser; under CI=true: failed above
    assert executable is not None
    return executable


async def run_in_browser(
    scenario: str, base_url: str, screenshot: Path, **arguments: Any
) -> dict[str, Any]:
    """Run ``tests.browser.scenarios.<scenario>`` in a fresh Chromium; return what it returned.

    A failing scenario fails the test with its error and the path of a screenshot of the page.
    """
    executable = require_browser()
    command = [
        sys.executable,
        "-m",
        "tests.browser.run",
        scenario,
        base_url,
        str(screenshot),
        json.dumps({"executable": executable, **arguments}),
    ]
    with trio.fail_after(SCENARIO_TIMEOUT_SECONDS):
        done = await trio.run_process(
            command, cwd=REPO, capture_stdout=True, capture_stderr=True, check=False
        )
    if done.returncode != 0:
        pytest.fail(
            f"browser scenario {scenario!r} failed (screenshot: {screenshot}):\n"
            + done.stderr.decode(errors="replace")[-6000:]
        )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result
