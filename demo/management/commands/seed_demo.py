from django.core.management.base import BaseCommand

from demo.seed import DEMO_LOGINS, seed_demo


class Command(BaseCommand):
    help = "Load the demo data (staff of every role, clients, pools, facilities). Safe to run again."

    def handle(self, *args, **options):
        self.stdout.write("Loading demo data…")
        seed_demo(lambda message: self.stdout.write(f"  {message}"))
        self.stdout.write(self.style.SUCCESS("Demo data ready. Logins:"))
        for login in DEMO_LOGINS:
            self.stdout.write(f"  {login.username:<12} {login.role:<30} password: {login.password}")
