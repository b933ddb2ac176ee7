import datetime

from django.core.management.base import BaseCommand

from api.services import idempotency_records_purge


class Command(BaseCommand):
    help = "Forget the stored responses to Idempotency-Keys older than --days (default 30)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30)

    def handle(self, *args, days, **options):
        deleted = idempotency_records_purge(older_than=datetime.timedelta(days=days))
        self.stdout.write(f"Forgot {deleted} stored response(s) older than {days} days.")
