"""Promises the repository makes to a newcomer: the README's commands, the compose file, settings."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_parses_and_names_every_service_the_docs_mention():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    services = set(compose["services"])
    assert {"postgres", "redis", "web", "worker", "beat"} <= services
    operations = (ROOT / "docs" / "operations.md").read_text()
    section = operations.split("### Production-like", 1)[1].split("\n### ", 1)[0]
    mentioned = set(re.findall(r"`(\w+)` service", section))
    assert mentioned, "docs/operations.md names the compose services"
    assert mentioned <= services
    for name in ("web", "worker", "beat"):
        assert compose["services"][name]["depends_on"], f"{name} waits for its databases"


def test_readme_starts_with_the_two_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    assert "make run" in first_screen
    assert "make test" in first_screen
    assert "demo-pass-2026" in first_screen


def test_ci_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in script.splitlines() if line.strip() and not line.startswith("#")]
    assert commands[-1].strip() == "exec make test"


def test_production_settings_refuse_to_start_without_secrets():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={"DJANGO_SETTINGS_MODULE": "config.settings.production", "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_models_and_migrations_agree(db):
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def _pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes) of every pin in a lock file written by `make lock`."""
    pins = {}
    for block in re.split(r"\n(?=\S)", lock.read_text()):
        match = re.match(r"([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)==([^\s;\\]+)", block)
        if match:
            name = canonicalize_name(match.group(1).split("[")[0])
            pins[name] = (match.group(2), block.count("--hash=sha256:"))
    return pins


@pytest.mark.parametrize(("extra", "lock"), [(None, "base.txt"), ("dev", "dev.txt")])
def test_every_dependency_has_an_upper_bound_and_a_hashed_pin_inside_its_range(extra, lock):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["optional-dependencies"][extra] if extra else project["dependencies"]
    pins = _pins(ROOT / "requirements" / lock)
    for line in wanted:
        requirement = Requirement(line)
        assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), (
            f"{requirement.name} has no upper bound in pyproject.toml"
        )
        version, hashes = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), (
            f"{lock} pins {requirement.name} {version} outside its range"
        )
        assert hashes >= 1, f"{lock} pins {requirement.name} without a hash"


def test_the_platform_is_installed_from_the_lock_files_with_their_hashes():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements/base.txt" in makefile
    assert "--require-hashes -r requirements/dev.txt" in makefile
    assert "pip install --quiet -e" not in makefile
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/base.txt" in dockerfile
