"""``python -m fake_exchange --venue kraken --port 8802``: a fake venue without Django (see ``cli``)."""

from __future__ import annotations

import argparse
import sys

from fake_exchange.cli import add_arguments, run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fake_exchange", description=__doc__)
    add_arguments(parser)
    options = parser.parse_args()
    try:
        run(options, write=lambda line: print(line, flush=True))
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
