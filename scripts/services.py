#!/usr/bin/env python3
"""Run a command with a throwaway PostgreSQL and Redis on loopback, then stop them — also when the
command fails or is interrupted: ``python scripts/services.py -- pytest -q`` (docs/operations.md).
``DATABASE_URL`` connects as the application's role, ``DATABASE_OWNER_URL`` as the owner of the tables (who
migrates). ``--need chromium`` and ``--need xgettext`` install the browser tests' tools the same way.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

DEBIAN_PACKAGES = ["postgresql", "redis-server"]
# Tools a command may ask for with --need: the program looked for, and the Debian packages that bring it.
# Chromium comes with CJK fonts so that pages in Traditional Chinese render in screenshots.
NEEDS = {"chromium": ["chromium", "fonts-noto-cjk"], "xgettext": ["gettext"]}

OWNER_ROLE, APP_ROLE = "margin_owner", "margin_app"


def say(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    candidates = []
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        candidates.append(Path(out))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "postgres").exists():
            return directory
    return None


def ensure_binaries() -> tuple[Path, str]:
    bindir, redis = postgres_bindir(), shutil.which("redis-server")
    if bindir and redis:
        return bindir, redis
    missing = [pkg for pkg, ok in zip(DEBIAN_PACKAGES, (bindir, redis), strict=True) if not ok]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say(
            "PostgreSQL and Redis servers are needed to run the tests. Install them, for example:\n"
            f"    sudo apt-get install -y {' '.join(missing)}      (Debian/Ubuntu)\n"
            "    brew install postgresql redis                    (macOS)\n"
            "then run `make test` again."
        )
        sys.exit(2)
    apt_install(missing)
    # The Debian package starts its own services; ours are separate, on free ports.
    for service in ("redis-server", "postgresql"):
        subprocess.run(["service", service, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bindir, redis = postgres_bindir(), shutil.which("redis-server")
    if not (bindir and redis):
        say("installation finished but the servers are still not found")
        sys.exit(2)
    return bindir, redis


def apt_install(packages: Sequence[str]) -> None:
    say(f"installing Debian packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=True)


def ensure_tools(tools: Sequence[str]) -> None:
    """Install the Debian packages of the --need tools that are missing, as root; otherwise say what to do."""
    missing = [tool for tool in tools if not shutil.which(tool)]
    if not missing:
        return
    packages = [package for tool in missing for package in NEEDS[tool]]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say(
            f"{', '.join(missing)} is needed to run the tests. Install it, for example:\n"
            f"    sudo apt-get install -y {' '.join(packages)}      (Debian/Ubuntu)\n"
            "then run `make test` again."
        )
        sys.exit(2)
    apt_install(packages)
    still_missing = [tool for tool in missing if not shutil.which(tool)]
    if still_missing:
        say(f"installation finished but {', '.join(still_missing)} is still not found")
        sys.exit(2)


def wait_for_port(port: int, what: str, process: subprocess.Popen | None, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening on 127.0.0.1:{port} within {seconds}s")


class Services:
    def __init__(self, bindir: Path, redis: str, settings: Sequence[str] = (), as_owner: bool = False):
        self.bindir, self.redis_binary, self.settings = bindir, redis, list(settings)
        self.as_owner = as_owner
        self.workdir = Path(tempfile.mkdtemp(prefix="margin-services-"))
        self.pg_port, self.redis_port = free_port(), free_port()
        self.pgdata = self.workdir / "pgdata"
        self.as_user: list[str] = []
        self.redis: subprocess.Popen | None = None
        self.pg_started = False

    def _pg(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.bindir / args[0]), *args[1:]], **kwargs)

    def start(self) -> dict[str, str]:
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
                user = pwd.getpwnam("postgres")
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._pg(
            "initdb", "-D", str(self.pgdata), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
            stdout=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        options = (
            f"-h 127.0.0.1 -p {self.pg_port} -k {self.workdir} -F -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB"
            + "".join(f" -c {setting}" for setting in self.settings)
        )
        self._pg(
            "pg_ctl", "-D", str(self.pgdata), "-o", options, "-l", str(self.workdir / "postgres.log"), "-w", "start",
            stdout=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        self.pg_started = True
        # Two roles, as in production (docs/database-roles.md): the owner of the database and its tables, which
        # runs the migrations (and creates the test database: CREATEDB), and the application's, which owns
        # nothing and gets what the application does after every migrate (core.db.app_role_grant).
        for statement in (
            f"CREATE ROLE {OWNER_ROLE} LOGIN CREATEDB",
            f"CREATE ROLE {APP_ROLE} LOGIN",
            f"CREATE DATABASE margin OWNER {OWNER_ROLE}",
        ):
            self._pg(
                "psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "-q", "-c", statement,
                check=True,
            )  # fmt: skip
        self.redis = subprocess.Popen(
            [self.redis_binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_for_port(self.redis_port, "redis-server", self.redis)
        version = self._pg("postgres", "--version", capture_output=True, text=True).stdout.strip()
        say(f"{version} on 127.0.0.1:{self.pg_port}, Redis on 127.0.0.1:{self.redis_port}")
        database = f"127.0.0.1:{self.pg_port}/margin"
        return {
            "DATABASE_URL": f"postgres://{OWNER_ROLE if self.as_owner else APP_ROLE}@{database}",
            "DATABASE_OWNER_URL": f"postgres://{OWNER_ROLE}@{database}",
            "DATABASE_APP_ROLE": APP_ROLE,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
        }

    def stop(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis.kill()
        if self.pg_started:
            self._pg(
                "pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop", stdout=subprocess.DEVNULL
            )
        shutil.rmtree(self.workdir, ignore_errors=True)
        say("PostgreSQL and Redis stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting for this run (repeatable), e.g. autovacuum=off",
    )
    parser.add_argument(
        "--need",
        action="append",
        default=[],
        choices=sorted(NEEDS),
        help="a program the command needs, installed from Debian when missing and root (repeatable)",
    )
    parser.add_argument(
        "--as-owner",
        action="store_true",
        help="DATABASE_URL connects as the owner of the tables, not as the application (benchmarks that "
        "migrate, vacuum and seed in bulk)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args()
    command = [part for part in args.command if part != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    for setting in args.pg_setting:
        name, _, value = setting.partition("=")
        if not name.replace("_", "").replace(".", "").isalnum() or not value:
            parser.error(f"--pg-setting wants NAME=VALUE, not {setting!r}")
    ensure_tools(args.need)
    services = Services(*ensure_binaries(), settings=args.pg_setting, as_owner=args.as_owner)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        env = {**os.environ, **services.start()}
        child = subprocess.Popen(command, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            try:
                return child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                return 130
    finally:
        services.stop()


if __name__ == "__main__":
    sys.exit(main())
