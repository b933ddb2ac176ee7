"""Promises the repository makes to a newcomer: the README's commands, the compose file, settings."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

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
