"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

Nothing leaves the machine: Chromium starts with its background services off and a proxy on a closed
loopback port for every address that is not this machine. A failing test leaves a screenshot in
var/test-screenshots/; a page that logs a console error (a script error, a blocked resource, a content
security policy violation) fails its test unless the test takes the errors itself (``console_errors``)."""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Iterator

import pytest
from django.test import Client
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from tests.browser.harness import DESKTOP, failure_screenshot
from tests.helpers import login_as

CHROMIUM = os.environ.get("BROWSER_TESTS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    # Every address but loopback goes to a proxy on a closed loopback port (Chromium always reaches
    # localhost directly), and no name but localhost resolves: nothing can leave the machine.
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
]
PAGE_TIMEOUT_MS = 10_000


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright for the browser tests only, stopped after them.

    Playwright's sync API runs an asyncio loop in this thread, and Django refuses ORM calls while a loop
    runs (SynchronousOnlyOperation). The tests' own ORM calls are synchronous, so the check is lifted for
    these tests alone (Playwright's documented workaround); the live server answers in its own thread."""
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (as root).")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as driver:
            yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def console_errors() -> list[str]:
    """The page's console errors and uncaught exceptions. A test that asks for this list checks it
    itself; otherwise any entry fails the test."""
    return []


@pytest.fixture
def page(request, browser: Browser, live_server) -> Iterator[Page]:
    """A fresh browser context (no cookies) and page at desktop size; ``page.goto("/…")`` is relative to
    the live server."""
    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP, locale="en-GB")
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    errors = request.getfixturevalue("console_errors")

    def on_console(message: ConsoleMessage) -> None:
        url = message.location.get("url", "")
        if message.type != "error" or (
            message.text.startswith("Failed to load resource") and url == page.url
        ):
            return  # a page's own 4xx status is the test's to check; a missing script or image is not
        errors.append(f"console: {message.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    yield page
    context.close()
    test_checks_them = "console_errors" in inspect.signature(request.node.function).parameters
    report = getattr(request.node, "browser_call_report", None)
    if errors and not test_checks_them and (report is None or report.passed):
        pytest.fail("the page logged errors:\n" + "\n".join(errors))


@pytest.fixture
def sign_in(page: Page, live_server):
    """``sign_in(user)``: the browser is signed in as ``user`` (a session cookie, no form to fill in)."""

    def sign_in(user) -> None:
        client = Client()
        login_as(client, user)
        cookie = client.cookies["sessionid"]
        page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])

    return sign_in


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failed test, a screenshot of its page as the failure left it, named after the test."""
    report = yield
    if report.when == "call":
        item.browser_call_report = report
        page = getattr(item, "funcargs", {}).get("page")
        if report.failed and page is not None and not page.is_closed():
            try:
                path = failure_screenshot(page, item.nodeid)
                report.sections.append(("screenshot", f"saved to {path}"))
                print(f"\nscreenshot of the failed page: {path}")
            except Exception as error:  # a screenshot must not hide the test's own failure
                report.sections.append(("screenshot", f"could not be taken: {error}"))
    return report
