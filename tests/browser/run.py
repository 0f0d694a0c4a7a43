"""``python -m tests.browser.run SCENARIO BASE_URL SCREENSHOT ARGS_JSON``: one browser session.

Prints the scenario's result as JSON on the last line of stdout and exits 0; on any failure
(an assertion, a timeout, an uncaught error in the page) saves a screenshot of the page,
prints the error on stderr and exits 1.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from playwright.sync_api import sync_playwright

from tests.browser import scenarios
from tests.browser.chromium import CHROMIUM_ARGS

DEFAULT_TIMEOUT_MS = 20_000


def main(argv: list[str]) -> int:
    name, base_url, screenshot, raw = argv
    arguments: dict[str, Any] = json.loads(raw)
    executable = arguments.pop("executable")
    scenario = getattr(scenarios, name)
    page_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1180, "height": 900})
            page.set_default_timeout(DEFAULT_TIMEOUT_MS)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            try:
                result = scenario(page, base_url, **arguments)
                # A page that throws is broken even when the assertions happened to pass.
                assert not page_errors, f"uncaught errors in the page: {page_errors}"
            except BaseException:
                traceback.print_exc()
                if page_errors:
                    print(f"uncaught errors in the page: {page_errors}", file=sys.stderr)
                try:
                    page.screenshot(path=screenshot, full_page=True)
                    print(f"screenshot of the failing page: {screenshot}", file=sys.stderr)
                except Exception as error:  # the page itself may be what broke
                    print(f"no screenshot: {error}", file=sys.stderr)
                return 1
        finally:
            browser.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
