"""Who may import whom, read from the source: production code never imports the test fake or the demo,
and the exchanges adapter depends on nothing of the project but ``core``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where the fake exchange and the demo may be imported: themselves, the tests, and the settings that
# install the demo (local and test).
DEVELOPMENT_ONLY = {"fake_exchange", "demo"}
ALLOWED_IMPORTERS = (
    "fake_exchange/",
    "demo/",
    "tests/",
    "config/settings/local.py",
    "config/settings/test.py",
)
PROJECT_PACKAGES = {
    path.name for path in ROOT.iterdir() if path.is_dir() and (path / "__init__.py").exists()
} | {"config"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def python_files() -> list[Path]:
    return [path for path in ROOT.rglob("*.py") if ".venv" not in path.parts and "var" not in path.parts]


def test_no_production_module_imports_the_fake_exchange_or_the_demo():
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & DEVELOPMENT_ONLY)
        for path in python_files()
        if not str(path.relative_to(ROOT)).startswith(ALLOWED_IMPORTERS)
        and imported_roots(path) & DEVELOPMENT_ONLY
    }
    assert offenders == {}


def test_the_exchanges_adapter_imports_only_core_of_the_project():
    project_imports = set().union(*(imported_roots(path) for path in (ROOT / "exchanges").rglob("*.py")))
    assert project_imports & PROJECT_PACKAGES <= {"core", "exchanges"}
    assert {"collateral", "financing", "fake_exchange", "demo"} <= PROJECT_PACKAGES  # what it checks against


def test_the_check_would_see_an_offender(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text(
        "import os\nfrom fake_exchange.clients import ccxt_client\nimport demo.seed\nfrom . import x\n"
    )
    assert imported_roots(module) == {"os", "fake_exchange", "demo"}
