#!/usr/bin/env python3
"""Where one facility read's time goes, in-process (no HTTP, no gunicorn): the bare authenticated endpoint,
a facility read with its queries, and the read's parts under cProfile. Run it through scripts/services.py:

    .venv/bin/python scripts/services.py -- .venv/bin/python scripts/profile_facility_read.py

Figures and how to read them: docs/benchmarks.md."""

from __future__ import annotations

import cProfile
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "scripts"))
import bench_api  # noqa: E402  (scripts/bench_api.py: the same settings and seed as make bench-api)

PARTS = {  # (file, function): the outermost call of that name in that file
    "authentication (the key's lookup)": ("authentication.py", "authenticate"),
    "throttle (the count in Redis: one MULTI/EXEC)": ("throttling.py", "allow_request"),
    "the facility, its valuation and open call (facility_read: one statement)": (
        "selectors.py",
        "facility_read",
    ),
    "the body (facility_representation)": ("serializers.py", "facility_representation"),
    "rendering (JSON)": ("renderers.py", "render"),
}


def per_request(client, path: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        client.get(path)
    return (time.perf_counter() - started) / count * 1000


def main() -> int:
    env = bench_api.environment()
    os.environ.update(env)
    owner = {**env, "DATABASE_URL": os.environ.get("DATABASE_OWNER_URL", env["DATABASE_URL"])}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=owner, check=True
    )
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    ids, raw_key = bench_api.seed(4, "100000.00", ("120000.00", "70000.00"))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}", HTTP_HOST="127.0.0.1")
    read = f"/api/v1/facilities/{ids[0]}/"
    count = int(os.environ.get("PROFILE_REQUESTS", "300"))
    per_request(client, read, 30)  # warm: imports, connections, the key's last use
    with CaptureQueriesContext(connection) as queries:
        client.get(read)
    print(f"a facility read runs {len(queries)} queries:")
    for query in queries.captured_queries:
        print(f"    {query['sql'][:110]}")
    floor, facility = per_request(client, "/api/v1/whoami/", count), per_request(client, read, count)
    print(f"in-process, {count} requests each: whoami {floor:.2f} ms, facility read {facility:.2f} ms "
          f"({floor / facility:.2f} of the read is the floor's work)")  # fmt: skip

    profile = cProfile.Profile()
    profile.enable()
    per_request(client, read, count)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = max(  # the test client's outermost ``get``, cumulative
        (
            ct
            for (file, _line, name), (_, _, _, ct, _) in stats.items()
            if name == "get" and "client.py" in file
        ),
        default=0.0,
    )
    cumulative: dict[tuple[str, str], float] = {}
    for (file, _line, name), (_, _, _, seconds, _) in stats.items():
        key = (Path(file).name, name)
        cumulative[key] = max(cumulative.get(key, 0.0), seconds)
    print("where a read's time goes (cProfile, cumulative, per request):")
    for part, key in PARTS.items():
        seconds = cumulative.get(key)
        shown = f"{seconds / count * 1000:6.2f} ms" if seconds is not None else "  (not found)"
        print(f"    {shown}  {part}")
    print(
        f"    {total / count * 1000:6.2f} ms  the whole request, profiled (the profiler slows Python, not the database)"
    )

    return 0


if __name__ == "__main__":
    sys.exit(main())
