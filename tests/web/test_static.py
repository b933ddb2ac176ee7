"""The static files: the vendored libraries are the published ones, and the production storage collects
everything the templates name (a missing file or a source map it cannot find stops collectstatic)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.template.loader import render_to_string
from django.test import RequestFactory, override_settings

ROOT = Path(__file__).resolve().parent.parent.parent
STATIC_REFERENCE = re.compile(r"""{%\s*static\s+['"]([^'"]+)['"]\s*%}""")


def vendored_checksums(readme: Path) -> dict[str, str]:
    return dict(
        (name, digest)
        for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme.read_text(), re.MULTILINE)
    )


def test_the_vendored_files_are_the_ones_the_readmes_name():
    for folder in (ROOT / "static" / "vendor", ROOT / "tests" / "browser" / "vendor"):
        checksums = vendored_checksums(folder / "README.md")
        assert checksums, f"{folder}/README.md lists its files' SHA-256"
        for name, digest in checksums.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
            assert any(p.name.startswith("LICENSE") for p in (folder / name).parent.iterdir()), name


def test_every_static_file_a_template_names_exists():
    named = {
        reference
        for template in (ROOT / "templates").rglob("*.html")
        for reference in STATIC_REFERENCE.findall(template.read_text())
    }
    assert "vendor/htmx-2.0.11/htmx.min.js" in named
    assert [name for name in sorted(named) if finders.find(name) is None] == []


def test_the_production_storage_collects_and_serves_the_pages_files(tmp_path, rf: RequestFactory):
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=storages):
        call_command("collectstatic", interactive=False, verbosity=0)
        request = rf.get("/")
        request.user = type("Anonymous", (), {"is_authenticated": False})()
        page = render_to_string("base.html", request=request)
    assert re.search(r'src="/static/vendor/htmx-2\.0\.11/htmx\.min\.[0-9a-f]{12}\.js"', page)
    assert re.search(r'href="/static/css/site\.[0-9a-f]{12}\.css"', page)
    # Chart.js names its source map; the storage rewrote the name to the hashed copy, which is there.
    [chart] = tmp_path.glob("vendor/chart.js-4.6.2/chart.umd.min.*.js")
    source_map = re.search(r"sourceMappingURL=(\S+)$", chart.read_text().strip()).group(1)
    assert source_map != "chart.umd.min.js.map"
    assert (chart.parent / source_map).is_file()
