"""The house's layers (``.importlinter``), checked on every run: a new import cycle, an upward import or a
production import of the fake exchange fails the suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_every_import_contract_is_kept():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_cycle_closed_inside_a_function_breaks_the_contract(tmp_path):
    """What the contracts would catch: two modules importing each other, one of them in a function body."""
    package = tmp_path / "house"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "services.py").write_text("def work():\n    from house.tasks import queue\n    queue()\n")
    (package / "tasks.py").write_text("from house.services import work\n\ndef queue():\n    work()\n")
    (tmp_path / ".importlinter").write_text(
        textwrap.dedent(
            """
            [importlinter]
            root_package = house

            [importlinter:contract:acyclic]
            name = No cycles
            type = acyclic_siblings
            ancestors =
                house
            """
        )
    )
    result = lint_imports(cwd=tmp_path)
    assert result.returncode != 0
    assert "No cycles BROKEN" in result.stdout
    assert ".tasks -> .services" in result.stdout
