from django.core.management.base import BaseCommand

from financing.retention import retention_run


class Command(BaseCommand):
    help = (
        "Roll the ratio snapshots up by hour and day, drop what is past its retention and create the coming "
        "days' snapshot partitions (docs/operations.md, What is kept). --dry-run says what it would do."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="write nothing; say what would be done")

    def handle(self, *args, dry_run, **options):
        steps = retention_run(dry_run=dry_run)
        prefix = "Would " if dry_run else ""
        for step in steps:
            self.stdout.write(f"{prefix}{step}")
        if not steps:
            self.stdout.write("Nothing to do.")
