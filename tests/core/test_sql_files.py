"""The project's ``.sql`` files: their comments carry nothing psycopg would read as a parameter or a slot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.sql import NAME_LINE

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [d for d in ROOT.iterdir() if (d / "__init__.py").exists()]
SQL_FILES = sorted(path for package in PACKAGES for path in package.rglob("*.sql"))


def test_the_statements_moved_out_of_python_are_found():
    names = {str(p.relative_to(ROOT)) for p in SQL_FILES}
    assert {"core/db.sql", "financing/margin_calls/batch.sql", "financing/monitoring/ladder.sql",
            "notifications/outbox.sql"} <= names  # fmt: skip


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_comments_hold_no_percent_sign_or_brace(path):
    """A ``%`` in a comment breaks a statement run with named parameters, a brace one composed with slots."""
    comments = [line for line in path.read_text().splitlines() if line.lstrip().startswith("--")]
    bad = [line for line in comments if not NAME_LINE.match(line) and re.search(r"[%{}]", line)]
    assert bad == []
