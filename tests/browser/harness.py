"""Helpers for the browser tests: accessibility checks with the shipped axe-core, screenshots for docs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parent.parent.parent
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
FAILURE_SCREENSHOTS = ROOT / "var" / "test-screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}

# What axe checks: WCAG 2.1 A and AA, and its best practices; what fails a test: these impacts.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
FAILING_IMPACTS = ("serious", "critical")


def accessibility_violations(page: Page, impacts: tuple[str, ...] = FAILING_IMPACTS) -> list[dict]:
    """axe-core's violations on the page as it is now, of the given impacts.

    axe is evaluated through the DevTools protocol, not added as a <script>: the page's content security
    policy (rightly) refuses inline scripts, and the test must not weaken it."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    results = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        AXE_TAGS,
    )
    return [violation for violation in results["violations"] if violation["impact"] in impacts]


def describe_violations(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} — {violation['helpUrl']}"
        )
        for node in violation["nodes"]:
            lines.append(
                f"    at {' '.join(map(str, node['target']))}: {node.get('failureSummary', '').strip()}"
            )
    return "\n".join(lines)


def assert_no_serious_accessibility_violations(page: Page) -> None:
    """Fail listing every serious or critical axe-core violation on the page as it is now."""
    violations = accessibility_violations(page)
    assert not violations, (
        f"{len(violations)} serious or critical accessibility violation(s) on {page.url}:\n"
        + describe_violations(violations)
    )


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def failure_screenshot(page: Page, test_id: str) -> Path:
    """A full-page screenshot of a failed test's page: var/test-screenshots/<test file>.<test name>.png."""
    FAILURE_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = FAILURE_SCREENSHOTS / f"{safe_name(test_id.split('/')[-1].replace('::', '.'))}.png"
    page.screenshot(path=path, full_page=True)
    return path


def docs_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """A screenshot of the page for the docs, as ``<name>.png``.

    Written to var/docs-screenshots/ on every run; to docs/screenshots/ too when UPDATE_DOCS_SCREENSHOTS=1
    (``make screenshots``), so that an ordinary ``make test`` leaves the repository's files alone."""
    file_name = f"{safe_name(name)}.png"
    scratch = ROOT / "var" / "docs-screenshots" / file_name
    scratch.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=scratch, full_page=full_page, animations="disabled")
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (DOCS_SCREENSHOTS / file_name).write_bytes(scratch.read_bytes())
        return DOCS_SCREENSHOTS / file_name
    return scratch
