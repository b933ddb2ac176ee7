"""The Traditional Chinese catalogue is complete, compiled and current: every string the pages mark for
translation has a translation, and the committed .mo says what the .po says."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = ROOT / "locale" / "zh_Hant" / "LC_MESSAGES"
# Not the project's sources: what makemessages must not read when it looks for strings.
NOT_SOURCES = [".*", "__pycache__", "var", "locale", "static", "docs", "tests", "benchmarks", "node_modules"]


def translations(catalogue) -> dict[tuple[str | None, str], str]:
    return {(entry.msgctxt, entry.msgid): entry.msgstr for entry in catalogue if entry.msgid}


def test_every_string_has_a_translation():
    po = polib.pofile(CATALOGUE / "django.po")
    assert len(po) > 0
    assert [entry.msgid for entry in po if not entry.msgstr or entry.fuzzy or entry.obsolete] == []


def test_the_compiled_catalogue_matches_its_source():
    """The .mo is committed so that `make run` and the image need no gettext: it must be the .po's."""
    po, mo = polib.pofile(CATALOGUE / "django.po"), polib.mofile(CATALOGUE / "django.mo")
    assert translations(mo) == translations(po), "run `make messages` to compile the .mo again"


def test_the_catalogue_holds_exactly_the_strings_of_the_sources(tmp_path):
    """What makemessages finds in the project's templates and code now, the .po has; nothing more.

    makemessages runs in a copy, so the test never rewrites the repository's catalogue."""
    if shutil.which("xgettext") is None:
        pytest.fail("xgettext is missing: `make test` installs Debian's gettext (as root)")
    copy = tmp_path / "project"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    (copy / "locale").mkdir()
    script = textwrap.dedent(
        """
        import django
        from django.conf import settings
        from django.core.management import call_command

        settings.configure(USE_I18N=True)
        django.setup()
        call_command("makemessages", locale=["zh_Hant"], verbosity=0)
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=copy, check=True, timeout=120)
    found = polib.pofile(copy / "locale" / "zh_Hant" / "LC_MESSAGES" / "django.po")
    committed = polib.pofile(CATALOGUE / "django.po")
    keys = lambda catalogue: {(entry.msgctxt, entry.msgid, entry.msgid_plural) for entry in catalogue}  # noqa: E731
    missing, stale = keys(found) - keys(committed), keys(committed) - keys(found)
    assert (missing, stale) == (set(), set()), "run `make messages` and translate the new entries"
