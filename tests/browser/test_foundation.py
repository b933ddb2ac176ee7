"""The shared web layer in a real browser: where `/` sends each person, the language switch, the layout's
accessibility on a phone and a desktop, the content security policy with htmx and Chart.js under it."""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from playwright.sync_api import Error, Page, expect

from tests.browser.harness import (
    DESKTOP,
    PHONE,
    accessibility_violations,
    assert_no_serious_accessibility_violations,
    docs_screenshot,
    failure_screenshot,
)
from tests.web.factories import ClientUserFactory, SignInUserFactory, StaffFactory


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)


def test_someone_not_signed_in_is_sent_to_sign_in(page: Page):
    page.goto("/")
    assert path_of(page) == "/sign-in/?next=/"
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def test_a_client_user_signs_in_and_lands_on_the_client_home(page: Page, console_errors):
    ClientUserFactory(username="harbour")
    page.goto("/")
    page.get_by_label("Username").fill("harbour")
    page.get_by_label("Password").fill("pass")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your facilities")
    assert console_errors == []


def test_staff_and_client_users_are_sent_to_their_homes(page: Page, sign_in):
    sign_in(StaffFactory())
    response = page.request.get("/", max_redirects=0)
    assert response.status == 302
    assert response.headers["location"] == resolve_url(settings.WEB_STAFF_HOME)
    page.context.clear_cookies()
    sign_in(ClientUserFactory())
    response = page.request.get("/", max_redirects=0)
    assert response.headers["location"] == "/portal/"


def test_a_wrong_password_is_refused_in_the_reader_s_language(page: Page):
    ClientUserFactory(username="harbour")
    page.goto("/sign-in/")
    page.get_by_role("button", name="繁體中文").click()
    page.get_by_label("使用者名稱").fill("harbour")
    page.get_by_label("密碼").fill("wrong")
    page.get_by_role("button", name="登入").click()
    expect(page.locator(".errorlist")).to_contain_text("輸入正確的 使用者名稱 和密碼")


def test_the_language_choice_is_remembered_across_pages(page: Page, sign_in):
    page.goto("/sign-in/")
    expect(page.locator("html")).to_have_attribute("lang", "en-GB")
    page.get_by_role("button", name="繁體中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hant")
    expect(page.get_by_role("heading", level=1)).to_have_text("登入")
    expect(page.get_by_role("button", name="繁體中文")).to_have_attribute("aria-pressed", "true")

    sign_in(SignInUserFactory(username="orphan"))
    page.goto("/")  # another page: a signed-in user with no client and no staff role
    expect(page.get_by_role("heading", level=1)).to_have_text("沒有存取權限")
    expect(page.get_by_role("link", name="保證金融資")).to_be_visible()

    cookie = next(c for c in page.context.cookies() if c["name"] == "django_language")
    assert cookie["value"] == "zh-hant"
    assert cookie["expires"] > time.time() + 360 * 24 * 3600  # kept for a year, not for the session

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("No access")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
@pytest.mark.parametrize("language", ["English", "繁體中文"])
def test_the_layout_has_no_serious_accessibility_violations(page: Page, size, language):
    page.set_viewport_size(size)
    page.goto("/sign-in/")
    page.get_by_role("button", name=language).click()
    assert_no_serious_accessibility_violations(page)
    # Nothing wider than the screen: no sideways scrolling on a 375-pixel phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
    code = "en" if language == "English" else "zh-hant"
    docs_screenshot(page, f"sign-in-{code}-{'phone' if size is PHONE else 'desktop'}")


def test_the_skip_link_takes_the_keyboard_to_the_main_content(page: Page, sign_in):
    sign_in(SignInUserFactory())
    page.goto("/")  # the no-access page: the sign-in page puts the focus in its form instead
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()


def test_the_accessibility_check_finds_what_is_wrong(page: Page):
    """The helper fails on a serious violation and names it: an image without text, a button without a name."""
    page.goto("/sign-in/")
    page.evaluate(
        """() => {
            const main = document.querySelector('main');
            main.insertAdjacentHTML('beforeend', '<img src="/static/favicon.svg"><button></button>');
        }"""
    )
    found = {violation["id"] for violation in accessibility_violations(page)}
    assert {"image-alt", "button-name"} <= found
    with pytest.raises(AssertionError, match=r"image-alt \(critical\)"):
        assert_no_serious_accessibility_violations(page)


@pytest.mark.urls("tests.browser.pages")
def test_the_policy_runs_the_project_s_scripts_and_stops_inline_ones(page: Page, live_server, console_errors):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto("/browser-checks/foundation/")
    policy = dict(
        part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"

    # The vendored libraries load from /static/ and work.
    assert page.evaluate("window.htmx.version") == "2.0.11"
    assert page.evaluate("window.Chart.version") == "4.6.2"
    expect(page.locator("#chart")).to_have_attribute("data-chart-drawn", "true")
    assert page.evaluate("Chart.getChart('chart').data.datasets[0].data") == ["1200000.00", "2500000.50"]
    page.get_by_role("button", name="Load").click()
    expect(page.locator("#fragment-text")).to_have_text("Loaded by htmx: \u2212HK$42.50")
    expect(page.locator("#fragment-chart")).to_have_attribute("data-chart-drawn", "true")
    page.get_by_role("button", name="Load").click()  # again: the fragment's chart is replaced, not piled up
    page.wait_for_load_state("networkidle")
    expect(page.locator("#fragment-chart")).to_have_attribute("data-chart-drawn", "true")
    assert page.evaluate("Object.keys(Chart.instances).length") == 2  # the page's and the fragment's
    expect(page.locator("#amount")).to_have_text("HK$1,234,567.89")

    # The inline script never ran, the inline style never applied; the browser says why.
    assert page.evaluate("window.inlineScriptRan") is None
    assert page.locator("#inline-style").evaluate("e => getComputedStyle(e).color") != "rgb(255, 0, 0)"
    # Exactly two refusals, the test's inline script and style attribute: htmx and Chart.js cause none.
    assert len(console_errors) == 2, console_errors
    assert any("Executing inline script violates" in error for error in console_errors)
    assert any("Applying inline style violates" in error for error in console_errors)

    # Every request went to the live server.
    assert requested
    assert [url for url in requested if not url.startswith(live_server.url)] == []
    assert any("/static/vendor/chart.js-4.6.2/chart.umd.min.js" in url for url in requested)


def test_nothing_reaches_past_this_machine(page: Page):
    """An address outside is sent to the closed loopback proxy: the request fails without leaving."""
    with pytest.raises(Error, match="ERR_PROXY_CONNECTION_FAILED"):
        page.goto("http://network-check.invalid/")


def test_the_api_docs_still_draw_under_the_policy(page: Page, sign_in, console_errors):
    """Swagger UI's script comes from a URL of its own (drf-spectacular's split view), so the policy lets it
    run; only its small inline <style> block is refused, which changes nothing that matters. The docs are for
    callers who are signed in."""
    sign_in(StaffFactory())
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Margin financing API")
    assert not [error for error in console_errors if "script-src" in error], console_errors


def test_a_failed_test_s_screenshot_is_named_after_the_test(page: Page):
    page.goto("/sign-in/")
    path = failure_screenshot(page, "tests/browser/test_portal.py::test_the_chart[phone zh-hant]")
    try:
        assert path.name == "test_portal.py.test_the_chart-phone-zh-hant.png"
        assert path.parent.name == "test-screenshots"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        path.unlink()
