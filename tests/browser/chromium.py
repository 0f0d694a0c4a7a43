"""Headless Chromium (Debian's package) driven by Playwright's sync API, for console tests.

Playwright's own browser download is not used (machines have no internet): we launch the
system ``chromium``. The sync API binds to the thread that started it, so a whole browser
session runs inside one worker thread (``trio.to_thread.run_sync``) while the server under
test keeps running in the test's Trio loop.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

T = TypeVar("T")

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
DEFAULT_TIMEOUT_MS = 20_000


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
        pytest.skip(message)
    assert executable is not None
    return executable


@contextmanager
def chromium_page(executable: str, page_errors: list[str]) -> Iterator[Page]:
    """A fresh browser and page; uncaught page errors are appended to ``page_errors``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1180, "height": 900})
            page = context.new_page()
            page.set_default_timeout(DEFAULT_TIMEOUT_MS)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            yield page
        finally:
            browser.close()


def run_scenario(executable: str, scenario: Callable[[Page], T], screenshot: Path) -> T:
    """Run ``scenario`` in a new page; on any failure save a screenshot and say where.

    Uncaught JavaScript errors fail the scenario too: a console that throws is broken even
    when the assertions happened to pass.
    """
    page_errors: list[str] = []
    with chromium_page(executable, page_errors) as page:
        try:
            result = scenario(page)
            assert not page_errors, f"uncaught errors in the page: {page_errors}"
            return result
        except BaseException:
            try:
                page.screenshot(path=str(screenshot), full_page=True)
                print(f"\nscreenshot of the failing page: {screenshot}")
            except Exception as error:  # the page itself may be what broke
                print(f"\nno screenshot ({error})")
            if page_errors:
                print(f"uncaught errors in the page: {page_errors}")
            raise
