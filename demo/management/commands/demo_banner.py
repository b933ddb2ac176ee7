"""Waits until the web server answers, then prints where to go and how to log in, and stays up (the
process runner stops everything when any process exits)."""

import signal
import socket
import time

from django.core.management.base import BaseCommand

from demo.seed import DEMO_LOGINS, DEMO_TOTP_SECRET


class Command(BaseCommand):
    help = "Print the demo URL and logins once the web server is up (used by `make run`)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-wait", action="store_true", help="print and exit at once")

    def handle(self, *args, port: int, no_wait: bool, **options):
        if not no_wait:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.3)
        url = f"http://127.0.0.1:{port}/admin/"
        lines = [
            "",
            "=" * 72,
            f"  Margin financing is running: {url}",
            "  Demo logins (username, role, password):",
        ]
        lines += [f"    {login.username:<12} {login.role:<30} {login.password}" for login in DEMO_LOGINS]
        lines += [
            "  Staff also give a second-factor code. Add this secret to an authenticator app (TOTP):",
            f"    {DEMO_TOTP_SECRET}",
            "  or print the current code with: .venv/bin/python manage.py demo_totp_code",
        ]
        lines += ["  Ctrl-C stops the web server, the worker and beat.", "=" * 72, ""]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
        if not no_wait:
            signal.pause()
