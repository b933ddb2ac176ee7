"""What every page's layout needs, prepared here so that the base template only shows it."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import get_language, to_locale


def layout(request: HttpRequest) -> dict:
    """The language switch's choices, each named in its own language, and the page's HTML ``lang``."""
    current = get_language()
    return {
        "html_lang": html_lang(current),
        "language_choices": [
            {"code": code, "name": name, "html_lang": html_lang(code), "current": code == current}
            for code, name in settings.LANGUAGES
        ],
    }


def html_lang(code: str) -> str:
    """Django's language code as an HTML ``lang`` value: ``zh-hant`` → ``zh-Hant``, ``en-gb`` → ``en-GB``."""
    return to_locale(code).replace("_", "-")
