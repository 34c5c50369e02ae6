"""The real-browser test harness: headless Chromium (Playwright) against pytest-django's
live server, signed in as a user, recording what a page did wrong.

Its fixtures are registered for controlplane/tests by controlplane/tests/conftest.py;
elsewhere, import them in that folder's conftest.py (or name this module in the root
conftest's `pytest_plugins`). In a test module:

    pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.django_db(transaction=True)]

and, in a test, `page = browser_for(user)` then `page.visit("/costs/")`, the Playwright API
through `page.page`, and `page.assert_clean()` at the end: no Content-Security-Policy
violation, no uncaught JavaScript error, no console error, no failed same-origin request.
`page.screenshot(name)` writes a PNG to SCREENSHOT_DIR (printed in every failure message).

Under the policy the page refuses eval: give `page.page.wait_for_function` a function
("count => ...", arg=...), not an expression string, which Playwright would eval in the page.

Chromium is the system's (/usr/bin/chromium, `apt-get install -y chromium`); never run
`playwright install`. Tests are skipped, with the reason, where it is missing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

CHROMIUM = Path(os.environ.get("BROWSER_TEST_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT_DIR = Path(
    os.environ.get("BROWSER_TEST_SCREENSHOTS", Path(settings.BASE_DIR) / "var" / "browser-screenshots")
)
TIMEOUT_MS = 10_000

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium) for the browser tests"
)

# Collects every securitypolicyviolation event of the page (and of its frames) from the first
# script on: the console message alone does not say which directive or which source.
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push({
    directive: e.violatedDirective, effective: e.effectiveDirective, blocked: e.blockedURI,
    source: e.sourceFile, line: e.lineNumber, sample: e.sample, disposition: e.disposition
  });
});
"""
_CSP_CONSOLE = re.compile(r"Content Security Policy|Refused to (apply|load|execute|connect|frame)", re.I)


@dataclass
class BrowserPage:
    """One signed-in tab and everything wrong it saw since it was opened."""

    page: Any  # playwright.sync_api.Page
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    csp_console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.add_init_script(_RECORD_VIOLATIONS)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(f"{self.page.url}: {error}"))
        self.page.on("response", self._on_response)
        self.page.on("requestfailed", self._on_request_failed)
        self._violations: list[dict[str, Any]] = []

    def _on_console(self, message: Any) -> None:
        text = f"{self.page.url}: [{message.type}] {message.text}"
        if _CSP_CONSOLE.search(message.text):
            self.csp_console.append(text)
        elif message.type == "error":
            self.console_errors.append(text)

    def _on_response(self, response: Any) -> None:
        if response.url.startswith(self.base_url) and response.status >= 400:
            self.failed_requests.append(f"{response.request.method} {response.url} -> {response.status}")

    def _on_request_failed(self, request: Any) -> None:
        if request.url.startswith(self.base_url):
            self.failed_requests.append(f"{request.method} {request.url} failed: {request.failure}")

    def visit(self, path: str, *, wait_until: str = "load") -> Any:
        """Open `path` of the live server (until its load event, or "networkidle"); returns the response."""
        self._collect_violations()
        response = self.page.goto(self.base_url + path, wait_until=wait_until)
        assert response is not None, f"GET {path}: no response{self.where()}"
        assert response.ok, f"GET {path}: {response.status}{self.where()}"
        return response

    def _collect_violations(self) -> None:
        # The list lives in the document: read it before navigating away, and again at the end.
        try:
            found = self.page.evaluate("window.__cspViolations || []")
        except Exception:  # noqa: BLE001 - a page being replaced has no document to ask
            return
        for violation in found:
            violation["page"] = self.page.url
            if violation not in self._violations:
                self._violations.append(violation)

    @property
    def csp_violations(self) -> list[dict[str, Any]]:
        self._collect_violations()
        return list(self._violations)

    def screenshot(self, name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-')}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.screenshots.append(path)
        return path

    def where(self) -> str:
        return f"\n(screenshots in {SCREENSHOT_DIR})"

    def problems(self) -> dict[str, list[Any]]:
        return {
            "csp_violations": self.csp_violations,
            "csp_console_messages": list(self.csp_console),
            "javascript_errors": list(self.page_errors),
            "console_errors": list(self.console_errors),
            "failed_requests": list(self.failed_requests),
        }

    def assert_clean(self) -> None:
        problems = {name: found for name, found in self.problems().items() if found}
        assert problems == {}, f"{problems}{self.where()}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (starting it costs about a second). Not per
    session: while it runs, an asyncio loop runs on the main thread (later tests calling
    asyncio.run() failed) and Django's async-safety check is off."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread, which makes Django refuse
    # ORM calls from test code ("async context"); the tests are synchronous all the same.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_for(browser: Any, live_server: Any) -> Iterator[Callable[..., BrowserPage]]:
    """`browser_for(user)`: a fresh browser context signed in as `user` (its session cookie,
    made by Django's test client), with one page recording problems. Closed after the test."""
    contexts: list[Any] = []

    def build(user: Any | None = None, *, viewport: dict[str, int] | None = None) -> BrowserPage:
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900}, base_url=live_server.url)
        contexts.append(context)
        if user is not None:
            client = Client()
            client.force_login(user)
            cookie = client.cookies[settings.SESSION_COOKIE_NAME]
            context.add_cookies(
                [
                    {
                        "name": settings.SESSION_COOKIE_NAME,
                        "value": cookie.value,
                        "url": live_server.url,
                        "httpOnly": True,
                    }
                ]
            )
        return BrowserPage(page=context.new_page(), base_url=live_server.url)

    yield build
    for context in contexts:
        context.close()
