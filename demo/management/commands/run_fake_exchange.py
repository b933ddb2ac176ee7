"""``manage.py run_fake_exchange --host 127.0.0.1 --port 8801 --venue bitstamp``: a local fake exchange
in the foreground for the demo, with default prices seeded (BTC/USD 98000, ETH/USD 3400). The server
itself lives in the plain ``fake_exchange`` package so a test or worker can run it without Django."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fake_exchange.cli import add_arguments, run


class Command(BaseCommand):
    help = "Serve a fake bitstamp- or kraken-like exchange on loopback for the demo (Ctrl-C stops it)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: object, **options: object) -> None:
        try:
            run(argparse.Namespace(**options), write=self._write)
        except ValueError as error:
            raise CommandError(str(error)) from error

    def _write(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
