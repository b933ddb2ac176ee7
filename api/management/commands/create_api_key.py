from django.core.management.base import BaseCommand, CommandError

from accounts.audit import SystemActor
from api.enums import Scope
from api.services import api_key_create
from core.exceptions import DomainError


class Command(BaseCommand):
    help = (
        "Create an API key for one of the broker's systems and print it once (only its digest is stored). "
        f"Scopes: {', '.join(Scope.values)}."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--name", required=True, help="the system, e.g. oms-prod (shown in the audit trail)"
        )
        parser.add_argument("--scopes", required=True, help="comma-separated, e.g. read,lending")
        parser.add_argument("--rate", default="", help="its own throttle rate, e.g. 1200/min")

    def handle(self, *args, name, scopes, rate, **options):
        try:
            api_key, raw_key = api_key_create(
                name=name, scopes=scopes, throttle_rate=rate, actor=SystemActor("manage.py create_api_key")
            )
        except DomainError as error:
            raise CommandError(str(error)) from error
        self.stderr.write(
            f"Created API key {api_key.name} ({api_key.prefix}…) with scopes {', '.join(api_key.scopes)}. "
            "Copy it now: it is not shown again."
        )
        self.stdout.write(raw_key)
