"""The demo staff's current second-factor code, for trying the platform without an authenticator app."""

import time

from django.core.management.base import BaseCommand
from django_otp.oath import TOTP

from demo.seed import DEMO_TOTP_KEY, DEMO_TOTP_SECRET


class Command(BaseCommand):
    help = "Print the current second-factor code of the demo staff logins (demo only)."

    def handle(self, *args, **options):
        totp = TOTP(DEMO_TOTP_KEY)
        totp.time = time.time()
        left = 30 - int(totp.time) % 30
        self.stdout.write(f"{totp.token():06d}  (valid for {left} more seconds; secret {DEMO_TOTP_SECRET})")
